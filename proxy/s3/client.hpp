// proxy/s3/: the cache's objects in an S3-compatible bucket. sigv4.hpp signs requests, xml.hpp
// reads S3's answers, and this client speaks the few operations the store needs over the
// project's own HTTP stack (proxy/upstream/'s connections, connector and pool).
//
// The client, for one bucket. Every operation:
//  - is signed with SigV4, its payload hash included (the hash is known: a blob's digest, or
//    computed from the bytes before they are sent);
//  - runs on a kept-alive connection from the pool, within `timeout` per connect, write or read;
//  - is retried with full-jitter exponential backoff (bounded) after a 5xx (503 SlowDown
//    included), a 400 RequestTimeout, a timeout or a broken connection, and fails at once on any
//    other answer. A connection from the pool that turns out closed is replaced once for free;
//  - fails with a Failure that names the operation, the bucket and key, and S3's error code.
// A GET's body streams: ObjectReader resumes with a new ranged GET where a broken one stopped.
#pragma once

#include "core/asio.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/histogram.hpp"
#include "core/host_resolver.hpp"
#include "proxy/s3/sigv4.hpp"
#include "proxy/upstream/registry_upstream.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy::s3 {

struct ClientSettings {
  Origin endpoint;  // scheme, host and port of the service
  std::string region;
  std::string bucket;
  std::string prefix;  // prepended to every key
  bool path_style = true;
  Credentials credentials;
  std::string ca_file;  // trusted on top of the system store; may be empty
  std::chrono::milliseconds timeout{30000};
  unsigned max_retries = 4;
  std::chrono::milliseconds backoff_base{100};  // the first retry waits up to this long
  std::chrono::milliseconds backoff_cap{5000};
  std::size_t max_idle_connections = 16;
  // upload(): one PUT below this size, multipart from it on.
  std::uint64_t single_put_limit = std::uint64_t{64} << 20;
  // The smallest part; larger when an object would need more than S3's 10,000 parts.
  std::uint64_t part_size = std::uint64_t{16} << 20;
  unsigned parts_in_flight = 4;
};

enum class Operation : std::uint8_t {
  get,
  put,
  remove,
  remove_batch,
  create_upload,
  upload_part,
  complete_upload,
  abort_upload,
  list,
};
inline constexpr std::size_t kOperationCount = 9;
std::string_view to_string(Operation operation);

// How a request's answer is counted.
enum class StatusClass : std::uint8_t { ok, redirect, client_error, server_error, no_response };
inline constexpr std::size_t kStatusClassCount = 5;
std::string_view to_string(StatusClass status);

// Shared by every client of a process, for /metrics.
struct ClientMetrics {
  std::array<std::array<core::Counter, kStatusClassCount>, kOperationCount> requests;
  std::array<core::Counter, kOperationCount> retries;
  core::Counter bytes_sent;      // request bodies
  core::Counter bytes_received;  // response bodies
  // From the request's first byte written to its response header read.
  std::array<core::LatencyHistogram, kOperationCount> latency;
};

struct Failure {
  Operation operation = Operation::get;
  unsigned status = 0;  // the HTTP status; 0 when there was no answer
  // S3's error code ("NoSuchKey", "SlowDown", "SignatureDoesNotMatch", ...), or without an
  // answer how the request failed ("connect", "timeout", "reset", "protocol", "stopping").
  std::string code;
  // For logs: "PUT s3://bucket/cache/blobs/sha256/ab…: 403 AccessDenied: Access Denied".
  std::string message;
  bool not_found() const { return status == 404; }
};
using Outcome = std::optional<Failure>;  // empty: success

// A request body read by position, so that a retry can send it again from its start. Called on
// the awaiting coroutine's thread, one call at a time.
class Payload {
 public:
  virtual ~Payload() = default;
  // Copies up to out.size() bytes from `offset`; 0 past the end. Throws std::system_error on an
  // I/O error.
  virtual std::size_t read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
};

// The lower-case hex SHA-256 of `length` bytes of `payload` from `offset`, read in pieces; throws
// std::system_error when the payload ends early or cannot be read.
std::string payload_sha256(Payload& payload, std::uint64_t offset, std::uint64_t length);

class MemoryPayload final : public Payload {
 public:
  explicit MemoryPayload(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  explicit MemoryPayload(std::string_view text)
      : bytes_(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) {}
  std::size_t read(std::uint64_t offset, std::span<std::uint8_t> out) override;

 private:
  std::span<const std::uint8_t> bytes_;
};

// The body of one ranged GET, read in order by one coroutine at a time. Dropping it before the
// end closes its connection.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // Up to out.size() bytes; 0 with no error at the end of the range. When the connection breaks
  // it asks again for the rest of the range, within the retry budget, so a failure here means
  // the budget is spent: the bytes cannot be had.
  virtual boost::asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) = 0;
  virtual std::uint64_t size() const = 0;  // of the range
};

struct ListedObject {
  std::string key;  // without the client's prefix
  std::uint64_t size = 0;
};

struct Listing {
  std::vector<ListedObject> objects;
  std::string next;  // continuation for the next page; empty on the last
};

class Client {
 public:
  // `resolver`, `clock`, `wall_clock` and `metrics` must outlive the client and every operation
  // in flight. Throws std::runtime_error naming the file when ca_file cannot be loaded.
  Client(boost::asio::io_context& io, ClientSettings settings, core::HostResolver& resolver,
         const core::Clock& clock, const core::WallClock& wall_clock, ClientMetrics& metrics);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One PUT of `size` bytes of `payload` whose SHA-256 is `sha256_hex`. The object appears
  // whole or not at all.
  boost::asio::awaitable<Outcome> put(std::string key, Payload& payload, std::uint64_t size,
                                      std::string sha256);
  // put() below single_put_limit; from it on a multipart upload of parts_in_flight parts at a
  // time, aborted when any part fails. The object appears only when the upload completes.
  boost::asio::awaitable<Outcome> upload(std::string key, Payload& payload, std::uint64_t size,
                                         std::string sha256);
  // Starts a GET of bytes [from, to) and reads its response header; `reader` then has the body.
  boost::asio::awaitable<Outcome> get(std::string key, std::uint64_t from, std::uint64_t to,
                                      std::unique_ptr<ObjectReader>& reader);
  // The whole object, when it has at most `max_bytes`.
  boost::asio::awaitable<Outcome> get_all(std::string key, std::size_t max_bytes,
                                          std::string& body);
  // Succeeds also when the object is not there (S3 answers 204 either way).
  boost::asio::awaitable<Outcome> remove(std::string key);
  // Up to 1000 keys in one request; `failed` gets the keys S3 could not delete.
  boost::asio::awaitable<Outcome> remove_batch(std::vector<std::string> keys,
                                               std::vector<std::string>& failed);
  // One page of up to 1000 keys under `prefix`, from `after` (a Listing::next).
  boost::asio::awaitable<Outcome> list(std::string prefix, std::string after, Listing& page);

  // Closes the idle connections; later operations fail with "stopping".
  void shutdown();
  // "s3://bucket/prefix+key", for messages.
  std::string describe(std::string_view key) const;
  const ClientSettings& settings() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::proxy::s3
