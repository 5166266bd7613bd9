#include "proxy/blob_store.hpp"

namespace pullthrough::proxy {

asio::awaitable<std::string> BlobStore::publish(std::string, std::uint64_t) {
  co_return std::string();
}

std::optional<std::string> read_whole(BlobReader& reader, std::uint64_t size) {
  std::string body(size, '\0');
  std::uint64_t offset = 0;
  while (offset < size) {
    std::size_t n = 0;
    try {
      n = reader.read(offset,
                      std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(body.data()) + offset,
                                              static_cast<std::size_t>(size - offset)));
    } catch (const std::system_error&) {
      return std::nullopt;
    }
    if (n == 0) return std::nullopt;
    offset += n;
  }
  return body;
}

}  // namespace pullthrough::proxy
