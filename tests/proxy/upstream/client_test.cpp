#include "proxy/upstream/client.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "core/logging.hpp"
#include "proxy/digester.hpp"
#include "tests/certs/test_support.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::proxy {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

// What the test server saw of one request.
struct Seen {
  std::string method;
  std::string target;
  std::string host;
  std::string authorization;
  std::string accept;
  int connection = 0;   // 1 for the first connection accepted, and so on
  http::fields fields;  // all of them, as they came
  // The body: its length and "sha256:<hex>" as far as it came, and whether it came whole (by
  // Content-Length or up to the last chunk). Empty for a request answered before its body.
  std::uint64_t body_bytes = 0;
  std::string body_digest;
  bool body_complete = false;
};

// What the test server does with one request: send `response` (or `raw` bytes instead), in pieces
// of `piece_size` when set, then keep the connection open without a word (`hang`) or close it
// (`close_after`). The request's body is read first, unless `before_body` (then the connection is
// closed after the answer, the body unread).
struct Reply {
  std::optional<http::response<http::string_body>> response;
  std::string raw;
  std::size_t piece_size = 0;
  bool hang = false;
  bool close_after = false;
  bool before_body = false;
};

Reply respond(http::status status, std::string body = {},
              const std::vector<std::pair<http::field, std::string>>& fields = {}) {
  Reply reply;
  reply.response.emplace(status, 11);
  for (auto& [name, value] : fields) reply.response->set(name, value);
  reply.response->body() = std::move(body);
  return reply;
}

Reply raw_reply(std::string bytes) {
  Reply reply;
  reply.raw = std::move(bytes);
  return reply;
}

// HTTP/1.1 on 127.0.0.1 port 0, over TLS with `leaf` (or plain; or accepting and then silent),
// on a thread of its own. The handler runs on that thread.
class TestServer {
 public:
  using Handler = std::function<Reply(const Seen&)>;
  enum class Mode { tls, plain, silent };

  TestServer(Mode mode, const certs::KeyedCertificate* leaf, Handler handler)
      : mode_(mode), handler_(std::move(handler)) {
    if (mode == Mode::tls) {
      SSL_CTX_use_certificate(tls_.native_handle(), leaf->cert.get());
      SSL_CTX_use_PrivateKey(tls_.native_handle(), leaf->key.get());
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  int connections() const { return connections_; }
  int closed() const { return closed_; }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      int id = ++connections_;
      if (mode_ == Mode::silent) {
        silent_.push_back(std::move(socket));
        continue;
      }
      asio::co_spawn(io_, serve(std::move(socket), id), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket, int id) {
    if (mode_ == Mode::tls) {
      beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), tls_);
      error_code ec;
      co_await stream.async_handshake(ssl::stream_base::server,
                                      asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) co_await converse(stream, id);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await converse(stream, id);
    }
    ++closed_;
  }

  template <typename Stream>
  asio::awaitable<void> converse(Stream& stream, int id) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::buffer_body> parser;
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      error_code ec;
      co_await http::async_read_header(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const auto& request = parser.get();
      Seen seen;
      seen.method = std::string(request.method_string());
      seen.target = std::string(request.target());
      seen.host = std::string(request[http::field::host]);
      seen.authorization = std::string(request[http::field::authorization]);
      seen.accept = std::string(request[http::field::accept]);
      seen.connection = id;
      seen.fields = request.base();
      // The handler sees the header; the body is read (or not) after it has chosen.
      Reply reply = handler_(seen);
      if (!reply.before_body) {
        error_code body_error = co_await read_body(stream, buffer, parser, seen);
        record(seen);
        if (body_error) co_return;
      } else {
        record(seen);
        reply.close_after = true;
      }
      std::string wire = reply.raw;
      bool keep_alive = request.keep_alive() && !reply.close_after;
      if (reply.response) {
        auto& response = *reply.response;
        if (!response.has_content_length() && !response.chunked()) response.prepare_payload();
        keep_alive = keep_alive && response.keep_alive();
        std::ostringstream out;
        out << response;
        wire = out.str();
      }
      std::size_t piece = reply.piece_size == 0 ? wire.size() : reply.piece_size;
      for (std::size_t at = 0; at < wire.size() && !ec; at += piece) {
        co_await asio::async_write(
            stream, asio::buffer(wire.data() + at, std::min(piece, wire.size() - at)),
            asio::redirect_error(asio::use_awaitable, ec));
        if (reply.piece_size != 0) {
          asio::steady_timer pause(io_, 2ms);
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
      }
      if (reply.hang) {
        asio::steady_timer forever(io_, 60s);
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec || !keep_alive) co_return;
    }
  }

  // Reads the body to its end (or its error), hashing it into `seen`.
  template <typename Stream>
  static asio::awaitable<error_code> read_body(Stream& stream, beast::flat_buffer& buffer,
                                               http::request_parser<http::buffer_body>& parser,
                                               Seen& seen) {
    Digester digester("sha256");
    std::vector<std::uint8_t> piece(64 * 1024);
    error_code ec;
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      std::size_t got = piece.size() - parser.get().body().size;
      digester.update(std::span<const std::uint8_t>(piece.data(), got));
      seen.body_bytes += got;
      if (ec) break;
    }
    seen.body_complete = !ec;
    seen.body_digest = digester.finish();
    co_return ec;
  }

  void record(const Seen& seen) {
    std::lock_guard lock(mutex_);
    seen_.push_back(seen);
  }

  Mode mode_;
  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::uint16_t port_ = acceptor_.local_endpoint().port();
  ssl::context tls_{ssl::context::tls_server};
  std::vector<tcp::socket> silent_;
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  std::thread thread_;
};

// Names from a table; every other name is NXDOMAIN. Answers on the client's io_context, as the
// real resolver does.
class FakeResolver final : public core::HostResolver {
 public:
  explicit FakeResolver(asio::io_context& io) : io_(io) {}

  void set(const std::string& host, std::vector<core::IpAddress> addresses) {
    std::lock_guard lock(mutex_);
    table_[host] = std::move(addresses);
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

  void resolve(std::string host, std::function<void(core::ResolveResult)> done) override {
    core::ResolveResult result;
    {
      std::lock_guard lock(mutex_);
      ++calls_;
      auto it = table_.find(host);
      if (it == table_.end()) {
        result.error = "NXDOMAIN";
      } else {
        result.addresses = it->second;
      }
    }
    asio::post(io_, [done = std::move(done), result = std::move(result)] { done(result); });
  }

 private:
  asio::io_context& io_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<core::IpAddress>> table_;
  int calls_ = 0;
};

core::IpAddress ip(const char* text) { return asio::ip::make_address(text); }

// A request's outcome with its body read to the end (or to its error).
struct Fetched {
  UpstreamResult result;
  std::string body;
  error_code body_error;
  std::size_t reads = 0;

  unsigned status() const { return result.response ? result.response->header.result_int() : 0; }
};

UpstreamRequest get(std::string target, std::string repository = "library/alpine") {
  UpstreamRequest request;
  request.target = std::move(target);
  request.repository = std::move(repository);
  return request;
}

const char* const kManifest = "/v2/library/alpine/manifests/latest";

// Byte `i` of a test body: varied enough that a byte lost, doubled or reordered changes the hash.
char body_byte(std::uint64_t i) { return static_cast<char>((i * 2654435761U) >> 13 & 0xff); }

std::string body_digest(std::uint64_t length) {
  Digester digester("sha256");
  std::vector<std::uint8_t> piece;
  for (std::uint64_t at = 0; at < length; at += piece.size()) {
    piece.resize(std::min<std::uint64_t>(64 * 1024, length - at));
    for (std::size_t i = 0; i < piece.size(); ++i)
      piece[i] = static_cast<std::uint8_t>(body_byte(at + i));
    digester.update(piece);
  }
  return digester.finish();
}

// A client's request body for forward(): `length` bytes of body_byte(), handed out at most
// `piece` bytes a read (`pace` apart), with Content-Length announced or not. It may fail after
// `fail_after` bytes with `failure`, first stalling for `stall` (a client whose body stops
// arriving: its own read timeout ends the wait).
class ClientBody final : public BodySource {
 public:
  ClientBody(std::uint64_t length, bool announce) : length_(length), announce_(announce) {}

  std::optional<std::uint64_t> announced_override;
  std::size_t piece = 64 * 1024;
  std::chrono::milliseconds pace{0};
  std::optional<std::uint64_t> fail_after;
  error_code failure = asio::error::connection_reset;
  std::chrono::milliseconds stall{0};

  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    largest_ask_ = std::max(largest_ask_.load(), out.size());
    std::chrono::milliseconds wait = pace;
    bool failing = fail_after && offset_ >= *fail_after;
    if (failing) wait = stall;
    if (wait.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor, wait);
      error_code ignored;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (failing) co_return BodyRead{0, failure};
    std::uint64_t end = fail_after ? std::min(length_, *fail_after) : length_;
    std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>({out.size(), piece, end - offset_}));
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(body_byte(offset_ + i));
    offset_ += n;
    co_return BodyRead{n, {}};
  }

  std::optional<std::uint64_t> content_length() const override {
    if (announced_override) return announced_override;
    return announce_ ? std::optional<std::uint64_t>(length_) : std::nullopt;
  }

  std::size_t largest_ask() const { return largest_ask_; }
  std::uint64_t handed_out() const { return offset_; }

 private:
  std::uint64_t length_;
  bool announce_;
  std::uint64_t offset_ = 0;
  std::atomic<std::size_t> largest_ask_{0};
};

ForwardRequest forward_request(http::verb method, std::string target, ClientBody* body = nullptr) {
  ForwardRequest request;
  request.method = method;
  request.target = std::move(target);
  request.body = body;
  return request;
}

// The CA is made once for all the tests: key generation is the slow part of a test's setup.
struct SharedCa {
  certs::testing::ScratchDir dir;
  certs::CertificateAuthority ca = certs::CertificateAuthority::load_or_create(
      dir.path() / "ca", "test", std::chrono::system_clock::now());
  std::filesystem::path file = dir.path() / "ca.pem";
  SharedCa() { certs::testing::write_text(file, ca.certificate_pem()); }
};

std::unique_ptr<SharedCa>& shared_ca() {
  static std::unique_ptr<SharedCa> ca;
  return ca;
}

std::vector<std::pair<std::string, std::optional<std::string>>>& saved_environment() {
  static std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  return saved;
}

class UpstreamClientTest : public ::testing::Test {
 protected:
  // The system trust store is pointed (by OpenSSL's own variables) at nothing: it plays no part
  // in these tests, and loading the real one takes a good part of a second under the sanitizers.
  static void SetUpTestSuite() {
    shared_ca() = std::make_unique<SharedCa>();
    for (const char* name : {"SSL_CERT_FILE", "SSL_CERT_DIR"}) {
      // NOLINTNEXTLINE(concurrency-mt-unsafe): before this suite starts any thread
      const char* value = std::getenv(name);
      saved_environment().emplace_back(name,
                                       value ? std::optional<std::string>(value) : std::nullopt);
      // NOLINTNEXTLINE(concurrency-mt-unsafe): likewise
      setenv(name, (shared_ca()->dir.path() / "no-system-trust").c_str(), 1);
    }
  }
  static void TearDownTestSuite() {
    for (const auto& [name, value] : saved_environment()) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);  // NOLINT(concurrency-mt-unsafe): all joined
      } else {
        unsetenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): all joined
      }
    }
    saved_environment().clear();
    shared_ca().reset();
  }

  UpstreamClientTest() {
    resolver_.set("registry.test", {ip("127.0.0.1")});
    resolver_.set("cdn.test", {ip("127.0.0.1")});
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~UpstreamClientTest() override {
    client_.reset();
    work_.reset();
    io_.stop();
    for (auto& thread : threads_) thread.join();
  }

  static UpstreamLimits test_limits() {
    UpstreamLimits limits;
    limits.connect_timeout = 1s;
    limits.read_timeout = 2s;
    return limits;
  }

  certs::KeyedCertificate leaf(const std::string& name) {
    return ca_.issue(name, std::chrono::system_clock::now(), std::chrono::hours(24));
  }

  std::unique_ptr<TestServer> tls_server(TestServer::Handler handler,
                                         const std::string& name = "registry.test") {
    auto cert = leaf(name);
    return std::make_unique<TestServer>(TestServer::Mode::tls, &cert, std::move(handler));
  }

  void make_client(std::uint16_t port, UpstreamLimits limits = test_limits(),
                   const std::string& scheme = "https", const std::string& host = "registry.test") {
    registry_.host = "registry.test";
    registry_.upstream = config::UpstreamUrl{scheme, host, port};
    registry_.ca_file = ca_file_.string();
    UpstreamSettings settings;
    settings.registry = &registry_;
    settings.password = password_;
    settings.own_addresses = own_addresses_;
    settings.limits = limits;
    client_ = std::make_unique<UpstreamClient>(io_, std::move(settings), resolver_, clock_);
  }

  template <typename T>
  T run(asio::awaitable<T> awaitable) {
    std::promise<T> promise;
    auto future = promise.get_future();
    asio::co_spawn(io_, std::move(awaitable), [&promise](std::exception_ptr error, T value) {
      if (error) {
        promise.set_exception(error);
      } else {
        promise.set_value(std::move(value));
      }
    });
    if (future.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "the request did not finish";
      std::abort();  // the coroutine still refers to this frame
    }
    return future.get();
  }

  static asio::awaitable<Fetched> fetch_body(UpstreamClient& client, UpstreamRequest request,
                                             std::size_t piece) {
    Fetched out;
    out.result = co_await client.send(std::move(request));
    if (out.result.response && out.result.response->body) {
      std::vector<std::uint8_t> buffer(piece);
      for (;;) {
        BodyRead read = co_await out.result.response->body->read_some(buffer);
        if (read.error) {
          out.body_error = read.error;
          break;
        }
        if (read.bytes == 0) break;
        out.body.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
        ++out.reads;
      }
    }
    co_return out;
  }

  Fetched fetch(UpstreamRequest request, std::size_t piece = 4096) {
    return run(fetch_body(*client_, std::move(request), piece));
  }

  static asio::awaitable<Fetched> forward_and_read(UpstreamClient& client, ForwardRequest request) {
    Fetched out;
    out.result = co_await client.forward(std::move(request));
    if (out.result.response && out.result.response->body) {
      WholeBody body = co_await read_whole_body(*out.result.response->body, 1024 * 1024);
      out.body = std::move(body.bytes);
      out.body_error = body.error;
    }
    co_return out;
  }

  Fetched forward(ForwardRequest request) {
    return run(forward_and_read(*client_, std::move(request)));
  }

  static void wait_until(const std::function<bool()>& condition) {
    for (int i = 0; i < 400 && !condition(); ++i) std::this_thread::sleep_for(5ms);
    ASSERT_TRUE(condition());
  }

  certs::testing::ScratchDir dir_;
  const certs::CertificateAuthority& ca_ = shared_ca()->ca;
  const std::filesystem::path& ca_file_ = shared_ca()->file;
  config::RegistryConfig registry_;
  std::string password_;
  std::vector<core::IpAddress> own_addresses_;
  core::testing::FakeClock clock_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  FakeResolver resolver_{io_};
  std::unique_ptr<UpstreamClient> client_;
  std::vector<std::thread> threads_;
};

// --- plain requests and the pool -----------------------------------------------------------

TEST_F(UpstreamClientTest, GetStreamsTheBodyInPieces) {
  std::string blob(5000, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>('a' + i % 26);
  auto server = tls_server([&](const Seen&) {
    Reply reply = respond(http::status::ok, blob, {{http::field::content_type, "x/blob"}});
    reply.piece_size = 1000;
    return reply;
  });
  make_client(server->port());
  UpstreamRequest request = get(kManifest);
  request.accept = "application/vnd.oci.image.manifest.v1+json";
  Fetched fetched = fetch(request, 7);
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 200U);
  EXPECT_EQ(fetched.result.response->header[http::field::content_type], "x/blob");
  EXPECT_EQ(fetched.result.response->body->content_length(), std::optional<std::uint64_t>(5000));
  EXPECT_FALSE(fetched.body_error) << fetched.body_error.message();
  EXPECT_EQ(fetched.body, blob);
  EXPECT_GE(fetched.reads, 5000U / 7);
  EXPECT_EQ(fetched.result.response->url,
            "https://registry.test:" + std::to_string(server->port()) + kManifest);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, kManifest);
  EXPECT_EQ(seen[0].host, "registry.test:" + std::to_string(server->port()));
  EXPECT_EQ(seen[0].accept, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(seen[0].authorization, "");
  EXPECT_EQ(client_->counters().requests.value(), 1U);
}

TEST_F(UpstreamClientTest, ChunkedBodyIsStreamedWithoutContentLength) {
  auto server = tls_server([](const Seen&) {
    Reply reply = respond(http::status::ok, std::string(3000, 'c'));
    reply.response->chunked(true);
    return reply;
  });
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest), 100);
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.result.response->body->content_length(), std::nullopt);
  EXPECT_FALSE(fetched.body_error);
  EXPECT_EQ(fetched.body, std::string(3000, 'c'));
}

TEST_F(UpstreamClientTest, HeadReturnsTheHeaderWithoutABody) {
  auto server = tls_server([](const Seen& seen) {
    if (seen.method == "HEAD") {
      Reply reply = respond(http::status::ok);
      reply.response->content_length(1234);
      return reply;
    }
    return respond(http::status::ok, "body");
  });
  make_client(server->port());
  UpstreamRequest head = get(kManifest);
  head.method = http::verb::head;
  Fetched fetched = fetch(head);
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 200U);
  EXPECT_EQ(fetched.result.response->body, nullptr);
  EXPECT_EQ(fetched.result.response->header[http::field::content_length], "1234");
  // The connection is in step after a HEAD: the next request on it gets its own answer.
  Fetched after = fetch(get(kManifest));
  EXPECT_EQ(after.body, "body");
  EXPECT_EQ(server->connections(), 1);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].method, "HEAD");
}

TEST_F(UpstreamClientTest, KeepAliveReusesTheConnection) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "hello"); });
  make_client(server->port());
  for (int i = 0; i < 3; ++i) {
    Fetched fetched = fetch(get(kManifest));
    EXPECT_EQ(fetched.body, "hello");
  }
  EXPECT_EQ(server->connections(), 1);
  EXPECT_EQ(client_->counters().connections_opened.value(), 1U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 2U);
  EXPECT_EQ(resolver_.calls(), 1);
}

TEST_F(UpstreamClientTest, BodyNotReadToTheEndClosesTheConnection) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "hello"); });
  make_client(server->port());
  {
    UpstreamResult result = run(client_->send(get(kManifest)));
    ASSERT_TRUE(result.response && result.response->body);
  }
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.body, "hello");
  EXPECT_EQ(server->connections(), 2);
  EXPECT_EQ(client_->counters().connections_reused.value(), 0U);
}

TEST_F(UpstreamClientTest, DeadPooledConnectionIsRetriedOnAFreshOne) {
  std::atomic<int> answered{0};
  auto server = tls_server([&](const Seen&) {
    Reply reply = respond(http::status::ok, "hello");
    // The first answer claims keep-alive and then the server goes away, as after its idle timeout.
    reply.close_after = answered++ == 0;
    return reply;
  });
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).body, "hello");
  wait_until([&] { return server->closed() == 1; });
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.body, "hello");
  EXPECT_EQ(server->connections(), 2);
  EXPECT_EQ(client_->counters().connections_opened.value(), 2U);
}

TEST_F(UpstreamClientTest, IdleConnectionExpiresAfterTheIdleTimeout) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "hello"); });
  UpstreamLimits limits = test_limits();
  limits.idle_timeout = 30s;
  make_client(server->port(), limits);
  EXPECT_EQ(fetch(get(kManifest)).body, "hello");
  clock_.advance(31s);
  EXPECT_EQ(fetch(get(kManifest)).body, "hello");
  EXPECT_EQ(client_->counters().connections_opened.value(), 2U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 0U);
}

TEST_F(UpstreamClientTest, ConcurrentRequestsAllSucceed) {
  auto server = tls_server([](const Seen& seen) { return respond(http::status::ok, seen.target); });
  make_client(server->port());
  constexpr int kRequests = 8;
  std::vector<std::future<Fetched>> futures;
  std::vector<std::promise<Fetched>> promises(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    futures.push_back(promises[i].get_future());
    asio::co_spawn(io_, fetch_body(*client_, get("/v2/r/blobs/" + std::to_string(i)), 3),
                   [&promises, i](const std::exception_ptr&, Fetched fetched) {
                     promises[i].set_value(std::move(fetched));
                   });
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(futures[i].wait_for(10s), std::future_status::ready);
    EXPECT_EQ(futures[i].get().body, "/v2/r/blobs/" + std::to_string(i));
  }
  EXPECT_LE(client_->counters().connections_opened.value(), 8U);
  EXPECT_EQ(client_->counters().requests.value(), 8U);
}

TEST_F(UpstreamClientTest, PlainHttpUpstreamWorks) {
  TestServer server(TestServer::Mode::plain, nullptr,
                    [](const Seen&) { return respond(http::status::ok, "plain"); });
  make_client(server.port(), test_limits(), "http");
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.body, "plain");
  EXPECT_EQ(fetched.result.response->url,
            "http://registry.test:" + std::to_string(server.port()) + kManifest);
}

TEST_F(UpstreamClientTest, IpLiteralHostIsNotResolved) {
  TestServer server(TestServer::Mode::plain, nullptr,
                    [](const Seen&) { return respond(http::status::ok, "plain"); });
  make_client(server.port(), test_limits(), "http", "127.0.0.1");
  EXPECT_EQ(fetch(get(kManifest)).body, "plain");
  EXPECT_EQ(resolver_.calls(), 0);
  EXPECT_EQ(server.seen().at(0).host, "127.0.0.1:" + std::to_string(server.port()));
}

// --- authentication ------------------------------------------------------------------------

// A registry that wants a Bearer token "tok-<n>", where n counts the tokens its realm handed out;
// the realm is /token on the same server.
class TokenRegistry {
 public:
  Reply operator()(const Seen& seen) {
    if (seen.target.starts_with("/token")) {
      if (token_status != http::status::ok) return respond(token_status, token_body);
      current_ = "tok-" + std::to_string(++issued_);
      return respond(http::status::ok, "{\"token\":\"" + current_ +
                                           "\",\"expires_in\":" + std::to_string(expires_in) + "}");
    }
    if (always_unauthorized || seen.authorization != "Bearer " + current_ || current_.empty()) {
      return respond(http::status::unauthorized, "{\"errors\":[]}",
                     {{http::field::www_authenticate,
                       "Bearer realm=\"https://" + seen.host +
                           "/token\",service=\"registry.test\",scope=\"repository:library/"
                           "alpine:pull\""}});
    }
    return respond(http::status::ok, "manifest");
  }

  int expires_in = 300;
  bool always_unauthorized = false;
  http::status token_status = http::status::ok;
  std::string token_body;

 private:
  std::string current_;
  int issued_ = 0;
};

TEST_F(UpstreamClientTest, BearerChallengeFetchesATokenAndRetries) {
  TokenRegistry registry;
  auto server = tls_server(std::ref(registry));
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 200U);
  EXPECT_EQ(fetched.body, "manifest");
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0].authorization, "");
  EXPECT_EQ(seen[1].target,
            "/token?service=registry.test&scope=repository%3Alibrary%2Falpine%3Apull");
  EXPECT_EQ(seen[1].authorization, "");  // anonymous: no credentials configured
  EXPECT_EQ(seen[2].target, kManifest);
  EXPECT_EQ(seen[2].authorization, "Bearer tok-1");
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 1U);
  // The 401's body was read, so one connection served all three.
  EXPECT_EQ(server->connections(), 1);
}

TEST_F(UpstreamClientTest, CachedTokenIsSentUpFront) {
  TokenRegistry registry;
  auto server = tls_server(std::ref(registry));
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).status(), 200U);
  clock_.advance(200s);  // well within the token's 300 s
  Fetched again = fetch(get("/v2/library/alpine/manifests/3.19"));
  EXPECT_EQ(again.status(), 200U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[3].authorization, "Bearer tok-1");
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 1U);
}

TEST_F(UpstreamClientTest, ExpiredTokenIsFetchedAgain) {
  TokenRegistry registry;
  registry.expires_in = 60;
  auto server = tls_server(std::ref(registry));
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).status(), 200U);
  clock_.advance(61s);
  Fetched again = fetch(get(kManifest));
  EXPECT_EQ(again.status(), 200U);
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 2U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 6U);
  EXPECT_EQ(seen[3].authorization, "");  // the expired token is not sent
  EXPECT_EQ(seen[5].authorization, "Bearer tok-2");
}

TEST_F(UpstreamClientTest, CredentialsGoToTheTokenRealmByBasic) {
  TokenRegistry registry;
  auto server = tls_server(std::ref(registry));
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).status(), 200U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0].authorization, "");
  EXPECT_EQ(seen[1].authorization, "Basic YWxpY2U6czNjcmV0");
  EXPECT_EQ(seen[2].authorization, "Bearer tok-1");
}

TEST_F(UpstreamClientTest, BasicChallengeIsAnsweredWithTheCredentials) {
  auto server = tls_server([](const Seen& seen) {
    if (seen.authorization != "Basic YWxpY2U6czNjcmV0") {
      return respond(http::status::unauthorized, "",
                     {{http::field::www_authenticate, "Basic realm=\"registry\""}});
    }
    return respond(http::status::ok, "manifest");
  });
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).body, "manifest");
  EXPECT_EQ(fetch(get(kManifest)).body, "manifest");
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0].authorization, "");
  EXPECT_EQ(seen[1].authorization, "Basic YWxpY2U6czNjcmV0");
  EXPECT_EQ(seen[2].authorization, "Basic YWxpY2U6czNjcmV0");  // up front the second time
}

TEST_F(UpstreamClientTest, BasicChallengeWithoutCredentialsReturnsThe401) {
  auto server = tls_server([](const Seen&) {
    return respond(http::status::unauthorized, "",
                   {{http::field::www_authenticate, "Basic realm=\"registry\""}});
  });
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).status(), 401U);
  EXPECT_EQ(server->seen().size(), 1U);
}

TEST_F(UpstreamClientTest, UnauthorizedAfterTheTokenIsReturnedAsTheResponse) {
  TokenRegistry registry;
  registry.always_unauthorized = true;
  auto server = tls_server(std::ref(registry));
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 401U);
  EXPECT_EQ(fetched.body, "{\"errors\":[]}");
  EXPECT_EQ(server->seen().size(), 3U);  // request, token, retry: no loop
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 1U);
}

TEST_F(UpstreamClientTest, TokenEndpointErrorIsAnAuthFailure) {
  TokenRegistry registry;
  registry.token_status = http::status::internal_server_error;
  auto server = tls_server(std::ref(registry));
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::auth);
  EXPECT_NE(fetched.result.error.find("500"), std::string::npos) << fetched.result.error;
  EXPECT_EQ(client_->counters().failures_auth.value(), 1U);
}

TEST_F(UpstreamClientTest, GarbageTokenAnswerIsAnAuthFailure) {
  TokenRegistry registry;
  auto server = tls_server([&](const Seen& seen) {
    if (seen.target.starts_with("/token")) return respond(http::status::ok, "<html>not json");
    return registry(seen);
  });
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::auth);
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 0U);
}

// --- redirects -----------------------------------------------------------------------------

TEST_F(UpstreamClientTest, RedirectToAnotherHostCarriesNoAuthorization) {
  auto cdn =
      tls_server([](const Seen&) { return respond(http::status::ok, "blob bytes"); }, "cdn.test");
  TokenRegistry tokens;
  auto registry = tls_server([&](const Seen& seen) {
    Reply reply = tokens(seen);
    if (reply.response->result() == http::status::ok && !seen.target.starts_with("/token")) {
      return respond(http::status::temporary_redirect, "",
                     {{http::field::location, "https://cdn.test:" + std::to_string(cdn->port()) +
                                                  "/blobs/sha256-abc?signature=secret"}});
    }
    return reply;
  });
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(registry->port());
  Fetched fetched = fetch(get("/v2/library/alpine/blobs/sha256:abc"));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 200U);
  EXPECT_EQ(fetched.body, "blob bytes");
  // The signature in the query stays out of the logs.
  EXPECT_EQ(fetched.result.response->url,
            "https://cdn.test:" + std::to_string(cdn->port()) + "/blobs/sha256-abc");
  auto seen = cdn->seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].target, "/blobs/sha256-abc?signature=secret");
  EXPECT_EQ(seen[0].host, "cdn.test:" + std::to_string(cdn->port()));
  EXPECT_EQ(seen[0].authorization, "");
  EXPECT_EQ(registry->seen().back().authorization, "Bearer tok-1");
  EXPECT_EQ(client_->counters().redirects_followed.value(), 1U);
}

TEST_F(UpstreamClientTest, RedirectTargetUnauthorizedIsReturnedAsIs) {
  auto cdn = tls_server(
      [](const Seen&) {
        return respond(http::status::unauthorized, "",
                       {{http::field::www_authenticate, "Basic realm=\"cdn\""}});
      },
      "cdn.test");
  auto registry = tls_server([&](const Seen&) {
    return respond(
        http::status::found, "",
        {{http::field::location, "https://cdn.test:" + std::to_string(cdn->port()) + "/blob"}});
  });
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(registry->port());
  EXPECT_EQ(fetch(get(kManifest)).status(), 401U);
  ASSERT_EQ(cdn->seen().size(), 1U);
  EXPECT_EQ(cdn->seen()[0].authorization, "");
}

TEST_F(UpstreamClientTest, RelativeRedirectStaysOnTheRegistry) {
  auto server = tls_server([](const Seen& seen) {
    if (seen.target == kManifest) {
      return respond(http::status::moved_permanently, "",
                     {{http::field::location, "/v2/library/alpine/manifests/moved"}});
    }
    return respond(http::status::ok, seen.target);
  });
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.body, "/v2/library/alpine/manifests/moved");
  EXPECT_EQ(server->connections(), 1);
}

TEST_F(UpstreamClientTest, RedirectLoopIsAProtocolFailure) {
  auto server = tls_server([](const Seen&) {
    return respond(http::status::found, "", {{http::field::location, "/v2/loop"}});
  });
  UpstreamLimits limits = test_limits();
  limits.max_redirects = 3;
  make_client(server->port(), limits);
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::protocol);
  EXPECT_EQ(server->seen().size(), 4U);
  EXPECT_EQ(client_->counters().redirects_followed.value(), 3U);
  EXPECT_EQ(client_->counters().failures_protocol.value(), 1U);
}

TEST_F(UpstreamClientTest, RedirectToAnotherSchemeOrBadLocationIsAProtocolFailure) {
  auto server = tls_server([](const Seen& seen) {
    std::string location =
        seen.target == kManifest ? "ftp://cdn.test/blob" : "https://u:p@cdn.test/";
    return respond(http::status::found, "", {{http::field::location, location}});
  });
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).result.failure, UpstreamFailure::protocol);
  EXPECT_EQ(fetch(get("/v2/other")).result.failure, UpstreamFailure::protocol);
}

// --- failures ------------------------------------------------------------------------------

TEST_F(UpstreamClientTest, UntrustedCertificateIsATlsFailure) {
  certs::testing::ScratchDir other_dir;
  auto other_ca = certs::CertificateAuthority::load_or_create(other_dir.path(), "other",
                                                              std::chrono::system_clock::now());
  auto cert = other_ca.issue("registry.test", std::chrono::system_clock::now(), 24h);
  TestServer server(TestServer::Mode::tls, &cert,
                    [](const Seen&) { return respond(http::status::ok, "x"); });
  make_client(server.port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::tls);
  EXPECT_TRUE(server.seen().empty());
  EXPECT_EQ(client_->counters().failures_tls.value(), 1U);
}

TEST_F(UpstreamClientTest, HostNameMismatchIsATlsFailure) {
  auto server =
      tls_server([](const Seen&) { return respond(http::status::ok, "x"); }, "other.test");
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::tls);
  EXPECT_NE(fetched.result.error.find("mismatch"), std::string::npos) << fetched.result.error;
  EXPECT_TRUE(server->seen().empty());
}

TEST_F(UpstreamClientTest, OwnAddressIsRefused) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "x"); });
  own_addresses_ = {ip("::ffff:127.0.0.1")};
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::own_address);
  EXPECT_EQ(server->connections(), 0);
  EXPECT_EQ(client_->counters().failures_own_address.value(), 1U);
}

TEST_F(UpstreamClientTest, OwnAddressIsSkippedWhenOthersRemain) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "x"); });
  own_addresses_ = {ip("192.0.2.1")};
  resolver_.set("registry.test", {ip("192.0.2.1"), ip("127.0.0.1")});
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).body, "x");
}

TEST_F(UpstreamClientTest, ResolveFailureIsReported) {
  make_client(443, test_limits(), "https", "nowhere.test");
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::resolve);
  EXPECT_NE(fetched.result.error.find("NXDOMAIN"), std::string::npos) << fetched.result.error;
  EXPECT_EQ(client_->counters().failures_resolve.value(), 1U);
}

TEST_F(UpstreamClientTest, ConnectionRefusedIsAConnectFailure) {
  std::uint16_t port = 0;
  {
    tcp::acceptor closed(io_, tcp::endpoint(ip("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }
  make_client(port);
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::connect);
  EXPECT_EQ(client_->counters().failures_connect.value(), 1U);
}

TEST_F(UpstreamClientTest, ReadTimeoutWhenTheServerNeverAnswers) {
  auto server = tls_server([](const Seen&) {
    Reply reply;
    reply.hang = true;
    return reply;
  });
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 300ms;
  make_client(server->port(), limits);
  auto start = std::chrono::steady_clock::now();
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::timeout) << fetched.result.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(client_->counters().failures_timeout.value(), 1U);
}

TEST_F(UpstreamClientTest, HandshakeTimeoutIsATimeout) {
  TestServer server(TestServer::Mode::silent, nullptr, nullptr);
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 300ms;
  make_client(server.port(), limits);
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::timeout);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(UpstreamClientTest, BodyStallIsAReadTimeout) {
  auto server = tls_server([](const Seen&) {
    Reply reply = raw_reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    reply.hang = true;
    return reply;
  });
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 300ms;
  make_client(server->port(), limits);
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.body, "0123456789");
  EXPECT_EQ(fetched.body_error, beast::error::timeout) << fetched.body_error.message();
}

TEST_F(UpstreamClientTest, OversizedHeaderIsAProtocolFailure) {
  auto server = tls_server([](const Seen&) {
    return respond(http::status::ok, "x", {{http::field::etag, std::string(4096, 'e')}});
  });
  UpstreamLimits limits = test_limits();
  limits.max_header_bytes = 1024;
  make_client(server->port(), limits);
  Fetched fetched = fetch(get(kManifest));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::protocol);
}

TEST_F(UpstreamClientTest, TruncatedBodyIsAReadError) {
  auto server = tls_server([](const Seen&) {
    Reply reply = raw_reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    reply.close_after = true;
    return reply;
  });
  make_client(server->port());
  Fetched fetched = fetch(get(kManifest));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.body, "0123456789");
  EXPECT_TRUE(fetched.body_error == http::error::partial_message ||
              fetched.body_error == ssl::error::stream_truncated)
      << fetched.body_error.message();
}

TEST_F(UpstreamClientTest, TruncatedPlainBodyIsAPartialMessage) {
  TestServer server(TestServer::Mode::plain, nullptr, [](const Seen&) {
    Reply reply = raw_reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    reply.close_after = true;
    return reply;
  });
  make_client(server.port(), test_limits(), "http");
  Fetched fetched = fetch(get(kManifest));
  EXPECT_EQ(fetched.body, "0123456789");
  EXPECT_EQ(fetched.body_error, http::error::partial_message) << fetched.body_error.message();
}

TEST_F(UpstreamClientTest, ShutdownFailsNewRequests) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok, "x"); });
  make_client(server->port());
  EXPECT_EQ(fetch(get(kManifest)).body, "x");
  client_->shutdown();
  EXPECT_EQ(fetch(get(kManifest)).result.failure, UpstreamFailure::shutting_down);
  EXPECT_EQ(server->seen().size(), 1U);
}

TEST_F(UpstreamClientTest, MissingCaFileIsNamedInTheError) {
  registry_.upstream = config::UpstreamUrl{"https", "registry.test", 443};
  registry_.ca_file = (dir_.path() / "missing.pem").string();
  UpstreamSettings settings;
  settings.registry = &registry_;
  try {
    UpstreamClient client(io_, settings, resolver_, clock_);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
}

TEST_F(UpstreamClientTest, ReadWholeBodyStopsAtTheLimit) {
  auto server = tls_server([](const Seen& seen) {
    Reply reply = respond(http::status::ok, std::string(100, 'x'));
    if (seen.target == "/chunked") reply.response->chunked(true);
    return reply;
  });
  make_client(server->port());
  auto read = [this](std::string target, std::size_t limit) -> asio::awaitable<WholeBody> {
    UpstreamResult result = co_await client_->send(get(std::move(target)));
    co_return co_await read_whole_body(*result.response->body, limit);
  };
  EXPECT_EQ(run(read("/sized", 100)).bytes, std::string(100, 'x'));
  EXPECT_EQ(run(read("/sized", 99)).error, http::error::body_limit);
  WholeBody chunked = run(read("/chunked", 50));
  EXPECT_EQ(chunked.error, http::error::body_limit);
  EXPECT_EQ(chunked.bytes.size(), 50U);
  EXPECT_EQ(run(read("/chunked", 100)).bytes, std::string(100, 'x'));
}

// --- credentials in send() ------------------------------------------------------------------

TEST_F(UpstreamClientTest, ClientAuthorizationIsSentVerbatimAndItsUnauthorizedReturned) {
  TokenRegistry registry;
  registry.always_unauthorized = true;
  auto server = tls_server(std::ref(registry));
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  UpstreamRequest request = get(kManifest);
  request.credentials = {UpstreamAuth::client, "Bearer client-token, as sent"};
  Fetched fetched = fetch(request);
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 401U);
  EXPECT_NE(fetched.result.response->header[http::field::www_authenticate], "");
  EXPECT_EQ(fetched.body, "{\"errors\":[]}");
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1U);  // no token fetched, no retry
  EXPECT_EQ(seen[0].authorization, "Bearer client-token, as sent");
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 0U);
}

TEST_F(UpstreamClientTest, ClientWithoutAuthorizationSendsNone) {
  TokenRegistry registry;
  auto server = tls_server(std::ref(registry));
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  // The appliance holds a token for this repository now; the client must not get it.
  EXPECT_EQ(fetch(get(kManifest)).status(), 200U);
  UpstreamRequest request = get(kManifest);
  request.credentials = {UpstreamAuth::client, ""};
  EXPECT_EQ(fetch(request).status(), 401U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[3].authorization, "");
}

TEST_F(UpstreamClientTest, ClientAuthorizationNeverGoesToARedirectTarget) {
  auto cdn =
      tls_server([](const Seen&) { return respond(http::status::ok, "blob bytes"); }, "cdn.test");
  auto registry = tls_server([&](const Seen&) {
    return respond(http::status::temporary_redirect, "",
                   {{http::field::location,
                     "https://cdn.test:" + std::to_string(cdn->port()) + "/blob?sig=1"}});
  });
  make_client(registry->port());
  UpstreamRequest request = get("/v2/library/alpine/blobs/sha256:abc");
  request.credentials = {UpstreamAuth::client, "Bearer client-token"};
  Fetched fetched = fetch(request);
  EXPECT_EQ(fetched.body, "blob bytes");
  ASSERT_EQ(registry->seen().size(), 1U);
  EXPECT_EQ(registry->seen()[0].authorization, "Bearer client-token");
  ASSERT_EQ(cdn->seen().size(), 1U);
  EXPECT_EQ(cdn->seen()[0].authorization, "");
}

TEST_F(UpstreamClientTest, AnonymousAccessNeverUsesTheCredentials) {
  TokenRegistry registry;
  auto server = tls_server(std::ref(registry));
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  UpstreamRequest anonymous = get(kManifest);
  anonymous.credentials.auth = UpstreamAuth::anonymous;
  EXPECT_EQ(fetch(anonymous).status(), 200U);
  // The appliance's own access has its own token (not the anonymous one), got with Basic.
  EXPECT_EQ(fetch(get(kManifest)).status(), 200U);
  // Anonymous requests send their own cached token up front (upstream has since issued tok-2
  // and refuses it), and get a new one without credentials.
  EXPECT_EQ(fetch(anonymous).status(), 200U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 9U);
  EXPECT_TRUE(seen[1].target.starts_with("/token"));
  EXPECT_EQ(seen[1].authorization, "");
  EXPECT_EQ(seen[2].authorization, "Bearer tok-1");
  EXPECT_EQ(seen[3].authorization, "");  // the appliance had no token yet
  EXPECT_TRUE(seen[4].target.starts_with("/token"));
  EXPECT_EQ(seen[4].authorization, "Basic YWxpY2U6czNjcmV0");
  EXPECT_EQ(seen[5].authorization, "Bearer tok-2");
  EXPECT_EQ(seen[6].authorization, "Bearer tok-1");
  EXPECT_TRUE(seen[7].target.starts_with("/token"));
  EXPECT_EQ(seen[7].authorization, "");
  EXPECT_EQ(seen[8].authorization, "Bearer tok-3");
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 3U);
}

// --- forward() -----------------------------------------------------------------------------

TEST_F(UpstreamClientTest, ForwardStreamsASizedBodyAndReturnsTheResponseAsIs) {
  constexpr std::uint64_t kLength = std::uint64_t{3} * 1024 * 1024 + 123;
  const std::string location =
      "https://registry.test:5000/v2/library/alpine/blobs/uploads/abc?_state=Zm9v%2Bbar%3D%3D&x=1";
  auto server = tls_server([&](const Seen&) {
    return respond(http::status::accepted, "accepted",
                   {{http::field::location, location},
                    {http::field::range, "0-3145850"},
                    {http::field::www_authenticate, "Bearer realm=\"x\""}});
  });
  make_client(server->port());
  ClientBody body(kLength, true);
  body.piece = 10000;
  const std::string target = "/v2/library/alpine/blobs/uploads/abc?_state=c3RhdGU%3D";
  ForwardRequest request = forward_request(http::verb::patch, target, &body);
  request.fields.set(http::field::authorization, "Bearer client-token");
  request.fields.set(http::field::content_type, "application/octet-stream");
  // What the caller must not decide: replaced or dropped.
  request.fields.set(http::field::host, "evil.test");
  request.fields.set(http::field::content_length, "5");
  request.fields.set(http::field::connection, "close");
  request.fields.set("keep-alive", "timeout=5");
  Fetched fetched = forward(std::move(request));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 202U);
  EXPECT_EQ(fetched.result.response->header[http::field::location], location);
  EXPECT_EQ(fetched.result.response->header[http::field::range], "0-3145850");
  EXPECT_EQ(fetched.result.response->header[http::field::www_authenticate], "Bearer realm=\"x\"");
  EXPECT_EQ(fetched.body, "accepted");
  EXPECT_EQ(fetched.result.response->url,
            "https://registry.test:" + std::to_string(server->port()) +
                "/v2/library/alpine/blobs/uploads/abc");
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].method, "PATCH");
  EXPECT_EQ(seen[0].target, target);
  EXPECT_EQ(seen[0].host, "registry.test:" + std::to_string(server->port()));
  EXPECT_EQ(seen[0].authorization, "Bearer client-token");
  EXPECT_EQ(seen[0].fields[http::field::content_type], "application/octet-stream");
  EXPECT_EQ(seen[0].fields[http::field::content_length], std::to_string(kLength));
  EXPECT_EQ(seen[0].fields.count(http::field::transfer_encoding), 0U);
  EXPECT_EQ(seen[0].fields.count(http::field::connection), 0U);
  EXPECT_EQ(seen[0].fields.count(http::field::keep_alive), 0U);
  EXPECT_TRUE(seen[0].body_complete);
  EXPECT_EQ(seen[0].body_bytes, kLength);
  EXPECT_EQ(seen[0].body_digest, body_digest(kLength));
  // Streamed: never more than one piece asked of the source at a time.
  EXPECT_LE(body.largest_ask(), std::size_t{64} * 1024);
  EXPECT_EQ(client_->counters().requests.value(), 1U);
  EXPECT_EQ(client_->counters().connections_opened.value(), 1U);
}

TEST_F(UpstreamClientTest, ForwardSendsABodyOfUnknownLengthChunked) {
  constexpr std::uint64_t kLength = std::uint64_t{1} * 1024 * 1024 + 7;
  auto server = tls_server([](const Seen&) { return respond(http::status::accepted); });
  make_client(server->port());
  ClientBody body(kLength, false);
  body.piece = 30000;
  ForwardRequest request =
      forward_request(http::verb::patch, "/v2/library/alpine/blobs/uploads/abc", &body);
  request.fields.set(http::field::transfer_encoding, "gzip");
  Fetched fetched = forward(std::move(request));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 202U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].fields[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(seen[0].fields.count(http::field::content_length), 0U);
  EXPECT_TRUE(seen[0].body_complete);
  EXPECT_EQ(seen[0].body_bytes, kLength);
  EXPECT_EQ(seen[0].body_digest, body_digest(kLength));
}

TEST_F(UpstreamClientTest, ForwardOverPlainHttpStreamsBothFramings) {
  // The pieces after the first are framed by the relay and written as they are: over a plain
  // connection that is Asio's write, not OpenSSL's.
  TestServer server(TestServer::Mode::plain, nullptr,
                    [](const Seen&) { return respond(http::status::accepted); });
  make_client(server.port(), test_limits(), "http");
  constexpr std::uint64_t kLength = std::uint64_t{700} * 1024 + 3;
  for (bool announce : {true, false}) {
    ClientBody body(kLength, announce);
    body.piece = 50000;
    Fetched fetched =
        forward(forward_request(http::verb::patch, "/v2/library/alpine/blobs/uploads/u", &body));
    ASSERT_TRUE(fetched.result.response) << fetched.result.error;
    EXPECT_EQ(fetched.status(), 202U);
  }
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2U);
  for (const auto& request : seen) {
    EXPECT_TRUE(request.body_complete);
    EXPECT_EQ(request.body_bytes, kLength);
    EXPECT_EQ(request.body_digest, body_digest(kLength));
  }
  EXPECT_EQ(seen[0].fields[http::field::content_length], std::to_string(kLength));
  EXPECT_EQ(seen[1].fields[http::field::transfer_encoding], "chunked");
}

TEST_F(UpstreamClientTest, ForwardWithoutABodySaysContentLengthOnlyWhereTheMethodHasOne) {
  auto server = tls_server([](const Seen&) { return respond(http::status::no_content); });
  make_client(server->port());
  EXPECT_EQ(forward(forward_request(http::verb::put, "/v2/r/manifests/a")).status(), 204U);
  EXPECT_EQ(forward(forward_request(http::verb::post, "/v2/r/blobs/uploads/")).status(), 204U);
  EXPECT_EQ(forward(forward_request(http::verb::delete_, "/v2/r/blobs/uploads/x")).status(), 204U);
  EXPECT_EQ(forward(forward_request(http::verb::get, "/v2/r/blobs/uploads/x")).status(), 204U);
  auto seen = server->seen();
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[0].fields[http::field::content_length], "0");
  EXPECT_EQ(seen[1].fields[http::field::content_length], "0");
  EXPECT_EQ(seen[2].fields.count(http::field::content_length), 0U);
  EXPECT_EQ(seen[3].fields.count(http::field::content_length), 0U);
  for (const auto& request : seen) {
    EXPECT_EQ(request.fields.count(http::field::transfer_encoding), 0U);
  }
  // Without a body, requests share the pooled connection.
  EXPECT_EQ(client_->counters().connections_opened.value(), 1U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 3U);
}

TEST_F(UpstreamClientTest, ForwardWithABodyNeverUsesAPooledConnection) {
  auto server = tls_server([](const Seen&) { return respond(http::status::created, "ok"); });
  make_client(server->port());
  EXPECT_EQ(forward(forward_request(http::verb::get, "/v2/")).status(), 201U);
  EXPECT_EQ(client_->counters().connections_opened.value(), 1U);
  ClientBody body(1000, true);
  EXPECT_EQ(forward(forward_request(http::verb::put, "/v2/r/manifests/a", &body)).status(), 201U);
  EXPECT_EQ(client_->counters().connections_opened.value(), 2U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 0U);
  EXPECT_EQ(server->connections(), 2);
  // Both are pooled afterwards: a request without a body takes one.
  EXPECT_EQ(forward(forward_request(http::verb::get, "/v2/")).status(), 201U);
  EXPECT_EQ(client_->counters().connections_opened.value(), 2U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 1U);
}

TEST_F(UpstreamClientTest, ForwardFailsAndClosesWhenTheBodyBreaksOff) {
  for (bool announce : {true, false}) {
    SCOPED_TRACE(announce ? "Content-Length" : "chunked");
    auto server = tls_server([](const Seen&) { return respond(http::status::created); });
    make_client(server->port());
    ClientBody body(std::uint64_t{4} * 1024 * 1024, announce);
    body.fail_after = std::uint64_t{1} * 1024 * 1024;
    Fetched fetched = forward(forward_request(http::verb::patch, "/v2/r/blobs/uploads/u", &body));
    EXPECT_FALSE(fetched.result.response);
    EXPECT_EQ(fetched.result.failure, UpstreamFailure::request_body) << fetched.result.error;
    EXPECT_EQ(client_->counters().failures_request_body.value(), 1U);
    // Upstream saw the connection end with the request incomplete, and answered nothing.
    wait_until([&] { return server->closed() == 1; });
    auto seen = server->seen();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_FALSE(seen[0].body_complete);
    EXPECT_LE(seen[0].body_bytes, *body.fail_after);
  }
}

TEST_F(UpstreamClientTest, ForwardFailsWhenTheBodyIsShorterThanAnnounced) {
  auto server = tls_server([](const Seen&) { return respond(http::status::created); });
  make_client(server->port());
  ClientBody body(100000, true);
  body.announced_override = 200000;
  Fetched fetched = forward(forward_request(http::verb::put, "/v2/r/blobs/uploads/u", &body));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::request_body) << fetched.result.error;
  wait_until([&] { return server->closed() == 1; });
  ASSERT_EQ(server->seen().size(), 1U);
  EXPECT_FALSE(server->seen()[0].body_complete);
  EXPECT_EQ(server->seen()[0].body_bytes, 100000U);
}

TEST_F(UpstreamClientTest, ForwardFailsWhenTheBodyIsLongerThanAnnounced) {
  auto server = tls_server([](const Seen&) { return respond(http::status::created); });
  make_client(server->port());
  ClientBody body(100000, true);
  body.announced_override = 50000;
  Fetched fetched = forward(forward_request(http::verb::put, "/v2/r/blobs/uploads/u", &body));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::request_body) << fetched.result.error;
}

// The client's body source bounds its own stalls (a body that stops arriving fails with a
// timeout after the read timeout: BodySource's contract); forward() then gives up at once, without
// waiting on upstream for an answer to a request it will never see the end of.
TEST_F(UpstreamClientTest, ForwardFailsInAboutTheReadTimeoutWhenTheBodyStalls) {
  auto server = tls_server([](const Seen&) { return respond(http::status::created); });
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 1s;
  make_client(server->port(), limits);
  ClientBody body(std::uint64_t{1} * 1024 * 1024, false);
  body.fail_after = 100000;
  body.stall = limits.read_timeout;
  body.failure = beast::error::timeout;
  auto start = std::chrono::steady_clock::now();
  Fetched fetched = forward(forward_request(http::verb::patch, "/v2/r/blobs/uploads/u", &body));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::request_body) << fetched.result.error;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 1900ms);  // not a second read timeout spent waiting for a response
  wait_until([&] { return server->closed() == 1; });
  ASSERT_EQ(server->seen().size(), 1U);
  EXPECT_FALSE(server->seen()[0].body_complete);
}

TEST_F(UpstreamClientTest, ForwardDeadlineIsPerWriteNotPerUpload) {
  auto server = tls_server([](const Seen&) { return respond(http::status::created); });
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 300ms;
  make_client(server->port(), limits);
  // 16 pieces 100 ms apart: the upload takes five times the read timeout.
  ClientBody body(16 * 4096, true);
  body.piece = 4096;
  body.pace = 100ms;
  Fetched fetched = forward(forward_request(http::verb::put, "/v2/r/blobs/uploads/u", &body));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 201U);
  EXPECT_EQ(server->seen().at(0).body_digest, body_digest(16 * 4096));
}

TEST_F(UpstreamClientTest, ForwardTimesOutWhenUpstreamStopsReading) {
  auto server = tls_server([](const Seen&) {
    Reply reply;
    reply.before_body = true;
    reply.hang = true;
    return reply;
  });
  UpstreamLimits limits = test_limits();
  limits.read_timeout = 300ms;
  make_client(server->port(), limits);
  ClientBody body(std::uint64_t{256} * 1024 * 1024, true);
  auto start = std::chrono::steady_clock::now();
  Fetched fetched = forward(forward_request(http::verb::put, "/v2/r/blobs/uploads/u", &body));
  EXPECT_FALSE(fetched.result.response);
  EXPECT_EQ(fetched.result.failure, UpstreamFailure::timeout) << fetched.result.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_LT(body.handed_out(), std::uint64_t{256} * 1024 * 1024);
}

TEST_F(UpstreamClientTest, ForwardReturnsAnAnswerUpstreamSentBeforeTheBodyEnded) {
  auto server = tls_server([](const Seen& seen) {
    if (seen.method == "GET") return respond(http::status::ok, "fine");
    Reply reply = respond(http::status::unauthorized, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                          {{http::field::www_authenticate, "Bearer realm=\"https://a.test/t\""}});
    reply.before_body = true;
    return reply;
  });
  make_client(server->port());
  ClientBody body(std::uint64_t{64} * 1024 * 1024, true);
  Fetched fetched = forward(forward_request(http::verb::patch, "/v2/r/blobs/uploads/u", &body));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  EXPECT_EQ(fetched.status(), 401U);
  EXPECT_EQ(fetched.result.response->header[http::field::www_authenticate],
            "Bearer realm=\"https://a.test/t\"");
  EXPECT_EQ(fetched.body, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
  EXPECT_LT(body.handed_out(), std::uint64_t{64} * 1024 * 1024);
  // That connection is not reused.
  EXPECT_EQ(forward(forward_request(http::verb::get, "/v2/")).body, "fine");
  EXPECT_EQ(client_->counters().connections_opened.value(), 2U);
  EXPECT_EQ(client_->counters().connections_reused.value(), 0U);
}

TEST_F(UpstreamClientTest, ForwardReturnsUnauthorizedAndRedirectsUntouched) {
  auto cdn = tls_server([](const Seen&) { return respond(http::status::ok, "cdn"); }, "cdn.test");
  const std::string elsewhere = "https://cdn.test:" + std::to_string(cdn->port()) + "/b?sig=1";
  TokenRegistry tokens;
  auto server = tls_server([&](const Seen& seen) {
    if (seen.target == "/v2/r/blobs/sha256:abc") {
      return respond(http::status::temporary_redirect, "", {{http::field::location, elsewhere}});
    }
    return tokens(seen);
  });
  registry_.credentials = config::Credentials{"alice", "/unused"};
  password_ = "s3cret";
  make_client(server->port());
  Fetched unauthorized = forward(forward_request(http::verb::get, kManifest));
  ASSERT_TRUE(unauthorized.result.response) << unauthorized.result.error;
  EXPECT_EQ(unauthorized.status(), 401U);
  EXPECT_EQ(unauthorized.body, "{\"errors\":[]}");
  Fetched redirect = forward(forward_request(http::verb::get, "/v2/r/blobs/sha256:abc"));
  ASSERT_TRUE(redirect.result.response) << redirect.result.error;
  EXPECT_EQ(redirect.status(), 307U);
  EXPECT_EQ(redirect.result.response->header[http::field::location], elsewhere);
  EXPECT_EQ(server->seen().size(), 2U);
  EXPECT_EQ(server->seen()[0].authorization, "");  // no credentials of the appliance's
  EXPECT_TRUE(cdn->seen().empty());
  EXPECT_EQ(client_->counters().tokens_fetched.value(), 0U);
  EXPECT_EQ(client_->counters().redirects_followed.value(), 0U);
}

TEST_F(UpstreamClientTest, ForwardToAnotherOriginVerifiesThatHost) {
  auto realm = tls_server(
      [](const Seen& seen) { return respond(http::status::ok, "{\"token\":\"t\"}" + seen.host); },
      "auth.test");
  auto registry = tls_server([](const Seen&) { return respond(http::status::ok, "registry"); });
  resolver_.set("auth.test", {ip("127.0.0.1")});
  make_client(registry->port());
  ClientBody body(300, true);
  ForwardRequest request = forward_request(http::verb::post, "/token", &body);
  request.origin = Origin{"https", "auth.test", realm->port()};
  request.fields.set(http::field::content_type, "application/x-www-form-urlencoded");
  Fetched fetched = forward(std::move(request));
  ASSERT_TRUE(fetched.result.response) << fetched.result.error;
  const std::string host = "auth.test:" + std::to_string(realm->port());
  EXPECT_EQ(fetched.body, "{\"token\":\"t\"}" + host);
  EXPECT_EQ(fetched.result.response->url, "https://" + host + "/token");
  ASSERT_EQ(realm->seen().size(), 1U);
  EXPECT_EQ(realm->seen()[0].host, host);
  EXPECT_EQ(realm->seen()[0].body_digest, body_digest(300));
  EXPECT_TRUE(registry->seen().empty());

  // A server there whose certificate names another host is refused.
  ForwardRequest wrong = forward_request(http::verb::get, "/token");
  wrong.origin = Origin{"https", "auth.test", registry->port()};
  Fetched refused = forward(std::move(wrong));
  EXPECT_FALSE(refused.result.response);
  EXPECT_EQ(refused.result.failure, UpstreamFailure::tls) << refused.result.error;
  EXPECT_TRUE(registry->seen().empty());
}

TEST_F(UpstreamClientTest, ForwardLogsNeitherAuthorizationNorQuery) {
  std::ostringstream logged;
  core::configure_logging(spdlog::level::debug, core::LogFormat::text,
                          std::make_shared<spdlog::sinks::ostream_sink_mt>(logged));
  auto server = tls_server([](const Seen&) { return respond(http::status::accepted); });
  make_client(server->port());
  ForwardRequest good =
      forward_request(http::verb::get, "/v2/r/blobs/uploads/u?_state=SECRETSTATE");
  good.fields.set(http::field::authorization, "Bearer SECRETTOKEN");
  EXPECT_EQ(forward(std::move(good)).status(), 202U);
  ClientBody body(1000, true);
  body.fail_after = 10;
  ForwardRequest bad =
      forward_request(http::verb::patch, "/v2/r/blobs/uploads/u?_state=SECRETSTATE", &body);
  bad.fields.set(http::field::authorization, "Bearer SECRETTOKEN");
  EXPECT_EQ(forward(std::move(bad)).result.failure, UpstreamFailure::request_body);
  core::configure_logging(spdlog::level::info, core::LogFormat::text,
                          std::make_shared<spdlog::sinks::stderr_sink_mt>());
  std::string text = logged.str();
  EXPECT_NE(text.find("/v2/r/blobs/uploads/u"), std::string::npos) << text;
  EXPECT_NE(text.find("request_body"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
}

TEST_F(UpstreamClientTest, ForwardAfterShutdownFails) {
  auto server = tls_server([](const Seen&) { return respond(http::status::ok); });
  make_client(server->port());
  client_->shutdown();
  ClientBody body(10, true);
  EXPECT_EQ(forward(forward_request(http::verb::put, "/v2/r/manifests/a", &body)).result.failure,
            UpstreamFailure::shutting_down);
  EXPECT_EQ(forward(forward_request(http::verb::get, "/v2/")).result.failure,
            UpstreamFailure::shutting_down);
  EXPECT_EQ(server->connections(), 0);
}

TEST(UpstreamFailureTest, NamesEveryKind) {
  EXPECT_EQ(to_string(UpstreamFailure::own_address), "own_address");
  EXPECT_EQ(to_string(UpstreamFailure::shutting_down), "shutting_down");
  EXPECT_EQ(to_string(UpstreamFailure::tls), "tls");
}

}  // namespace
}  // namespace pullthrough::proxy
