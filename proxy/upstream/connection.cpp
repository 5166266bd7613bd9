#include "proxy/upstream/connection.hpp"

#include <cerrno>
#include <cstdint>

#include <sys/socket.h>

namespace pullthrough::proxy {

bool socket_readable_or_closed(int fd) {
  std::uint8_t byte = 0;
  const ssize_t got = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true;  // 0: end of stream; more: bytes no request asked for
}

}  // namespace pullthrough::proxy
