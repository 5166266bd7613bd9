// The S3 client against real S3-compatible servers: Moto with SigV4 authentication enforced, and
// npm's s3rver, each reached directly and through tests/e2e/s3_fault_proxy.py. The servers are
// started by tests/e2e/s3_client_test.sh, which runs this binary in the test bed's namespace once
// per server with the environment below; without it every test is skipped.
//   PT_S3_SERVER          moto or s3rver
//   PT_S3_ENDPOINT        http(s)://ADDR:PORT of the server
//   PT_S3_CA              with https, the CA of the server's certificate
//   PT_S3_BUCKET          a bucket the keys may write
//   PT_S3_KEY_FILE        the access key, and the secret key
//   PT_S3_SECRET_FILE
//   PT_S3_PROXY           http://ADDR:PORT of the fault proxy in front of the server
//   PT_S3_PROXY_CONTROL   http://ADDR:PORT of its control listener
#include "proxy/s3/client.hpp"

#include <cstdlib>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy::s3 {
namespace {

using ::testing::HasSubstr;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Origin origin_of(const std::string& url) {
  Origin origin;
  origin.scheme = url.substr(0, url.find("://"));
  auto rest = url.substr(url.find("://") + 3);
  auto colon = rest.rfind(':');
  origin.host = rest.substr(0, colon);
  origin.port = static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)));
  return origin;
}

// Success, or the failure's message.
::testing::AssertionResult ok(const Outcome& outcome) {
  if (!outcome) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << outcome->message;
}

class NoNames final : public core::HostResolver {
 public:
  void resolve(std::string host, std::function<void(core::ResolveResult)> done) override {
    done(core::ResolveResult{{}, "no name resolution in this test: " + host});
  }
};

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(random());
  return out;
}

class S3ClientPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (env("PT_S3_ENDPOINT").empty()) {
      GTEST_SKIP() << "no S3 server: run by tests/e2e/s3_client_test.sh";
    }
    server_ = env("PT_S3_SERVER");
    worker_ = std::thread([this] { io_.run(); });
    // Each test's keys are its own, so that runs and servers never see each other's objects.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = "t/" + std::string(info->name()) + "/";
  }

  void TearDown() override {
    clients_.clear();
    work_.reset();
    io_.stop();
    if (worker_.joinable()) worker_.join();
  }

  ClientSettings settings(bool through_proxy = false) {
    ClientSettings s;
    s.endpoint = origin_of(env(through_proxy ? "PT_S3_PROXY" : "PT_S3_ENDPOINT"));
    s.ca_file = through_proxy ? std::string() : env("PT_S3_CA");
    s.region = "us-east-1";
    s.bucket = env("PT_S3_BUCKET");
    s.prefix = prefix_;
    s.credentials.access_key = read_file(env("PT_S3_KEY_FILE"));
    s.credentials.secret_key = read_file(env("PT_S3_SECRET_FILE"));
    s.timeout = std::chrono::seconds(5);
    s.backoff_base = std::chrono::milliseconds(20);
    s.backoff_cap = std::chrono::milliseconds(200);
    return s;
  }

  Client& client(ClientSettings s) {
    clients_.push_back(
        std::make_unique<Client>(io_, std::move(s), resolver_, clock_, wall_clock_, metrics_));
    return *clients_.back();
  }

  template <typename T>
  T run(asio::awaitable<T> operation) {
    return asio::co_spawn(io_, std::move(operation), asio::use_future).get();
  }

  Outcome put(Client& c, const std::string& key, const std::string& bytes) {
    MemoryPayload payload(bytes);
    return run(c.upload(key, payload, bytes.size(), sha256_hex(bytes)));
  }

  // Reads [from, to) of `key` to the end through one ObjectReader; `failed` says whether a read
  // failed.
  std::string get(Client& c, const std::string& key, std::uint64_t from, std::uint64_t to,
                  Outcome& outcome, bool& failed) {
    return run([&]() -> asio::awaitable<std::string> {
      std::unique_ptr<ObjectReader> reader;
      outcome = co_await c.get(key, from, to, reader);
      std::string out;
      failed = false;
      if (outcome) co_return out;
      std::vector<std::uint8_t> buffer(100000);
      for (;;) {
        BodyRead read = co_await reader->read_some(buffer);
        if (read.error) {
          failed = true;
          break;
        }
        if (read.bytes == 0) break;
        out.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
      }
      co_return out;
    }());
  }

  // Sets the fault proxy's mode.
  void fault(const std::string& command) {
    Origin control = origin_of(env("PT_S3_PROXY_CONTROL"));
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address(control.host), control.port});
    std::string request = "POST /mode HTTP/1.1\r\nHost: control\r\nContent-Length: " +
                          std::to_string(command.size()) + "\r\nConnection: close\r\n\r\n" +
                          command;
    asio::write(socket, asio::buffer(request));
    std::string answer;
    boost::system::error_code ec;
    std::array<char, 4096> piece{};
    for (;;) {
      auto n = socket.read_some(asio::buffer(piece), ec);
      answer.append(piece.data(), n);
      if (ec) break;
    }
    ASSERT_THAT(answer, HasSubstr(" 200 ")) << command;
  }

  std::uint64_t retries(Operation operation) const {
    return metrics_.retries[static_cast<std::size_t>(operation)].value();
  }
  std::uint64_t requests(Operation operation, StatusClass status) const {
    return metrics_.requests[static_cast<std::size_t>(operation)][static_cast<std::size_t>(status)]
        .value();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::thread worker_;
  NoNames resolver_;
  core::SteadyClock clock_;
  core::SystemWallClock wall_clock_;
  ClientMetrics metrics_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::string server_;
  std::string prefix_;
};

TEST_F(S3ClientPeerTest, PutThenRangedGetsReturnTheBytes) {
  Client& c = client(settings());
  const std::string bytes = random_bytes(300000, 1);
  ASSERT_TRUE(ok(put(c, "blobs/sha256/one", bytes)));
  Outcome outcome;
  bool failed = false;
  EXPECT_EQ(get(c, "blobs/sha256/one", 0, bytes.size(), outcome, failed), bytes);
  EXPECT_FALSE(outcome);
  EXPECT_FALSE(failed);
  EXPECT_EQ(get(c, "blobs/sha256/one", 1000, 1010, outcome, failed), bytes.substr(1000, 10));
  EXPECT_EQ(get(c, "blobs/sha256/one", bytes.size() - 1, bytes.size(), outcome, failed),
            bytes.substr(bytes.size() - 1));
  std::string whole;
  ASSERT_TRUE(ok(run(c.get_all("blobs/sha256/one", 1 << 20, whole))));
  EXPECT_EQ(whole, bytes);
  EXPECT_GE(requests(Operation::get, StatusClass::ok), 4U);
  EXPECT_EQ(metrics_.latency[static_cast<std::size_t>(Operation::get)].snapshot().count(),
            requests(Operation::get, StatusClass::ok));
}

TEST_F(S3ClientPeerTest, AMissingKeyIsNamedWithItsBucketAndCode) {
  Client& c = client(settings());
  Outcome outcome;
  bool failed = false;
  get(c, "blobs/sha256/absent", 0, 10, outcome, failed);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->not_found());
  EXPECT_EQ(outcome->code, "NoSuchKey");
  EXPECT_THAT(outcome->message, HasSubstr("s3://" + env("PT_S3_BUCKET") + "/" +
                                          c.settings().prefix + "blobs/sha256/absent"));
  EXPECT_EQ(retries(Operation::get), 0U);  // a 404 is an answer, not a fault
}

TEST_F(S3ClientPeerTest, AWrongSecretKeyIsRefused) {
  if (server_ == "s3rver") GTEST_SKIP() << "s3rver does not check SigV4 signatures";
  auto s = settings();
  s.credentials.secret_key += "x";
  Client& c = client(s);
  Outcome outcome = put(c, "blobs/sha256/refused", "bytes");
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 403U);
  EXPECT_EQ(outcome->code, "SignatureDoesNotMatch");
  EXPECT_EQ(retries(Operation::put), 0U);
}

TEST_F(S3ClientPeerTest, AnUnknownAccessKeyIsRefused) {
  auto s = settings();
  s.credentials.access_key = "AKIDNOSUCHKEY0000000";
  Client& c = client(s);
  Outcome outcome = put(c, "blobs/sha256/refused", "bytes");
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 403U);
  EXPECT_EQ(outcome->code, "InvalidAccessKeyId");
}

TEST_F(S3ClientPeerTest, AMissingBucketIsNamed) {
  auto s = settings();
  s.bucket = "pt-no-such-bucket";
  Client& c = client(s);
  Outcome outcome = put(c, "blobs/sha256/nowhere", "bytes");
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 404U);
  EXPECT_EQ(outcome->code, "NoSuchBucket");
  EXPECT_THAT(outcome->message, HasSubstr("pt-no-such-bucket"));
}

TEST_F(S3ClientPeerTest, AMultipartUploadAssemblesItsParts) {
  auto s = settings();
  // S3's smallest part is 5 MiB (all but the last); three parts and a short one.
  s.single_put_limit = std::uint64_t{6} << 20;
  s.part_size = std::uint64_t{5} << 20;
  s.parts_in_flight = 2;
  Client& c = client(s);
  const std::string bytes = random_bytes((std::size_t{15} << 20) + 12345, 2);
  ASSERT_TRUE(ok(put(c, "blobs/sha256/big", bytes)));
  EXPECT_EQ(requests(Operation::create_upload, StatusClass::ok), 1U);
  EXPECT_EQ(requests(Operation::upload_part, StatusClass::ok), 4U);
  EXPECT_EQ(requests(Operation::complete_upload, StatusClass::ok), 1U);
  EXPECT_EQ(requests(Operation::put, StatusClass::ok), 0U);
  Outcome outcome;
  bool failed = false;
  std::string back = get(c, "blobs/sha256/big", 0, bytes.size(), outcome, failed);
  EXPECT_FALSE(failed);
  EXPECT_TRUE(back == bytes) << "got " << back.size() << " bytes";
}

TEST_F(S3ClientPeerTest, ListingAndBatchDeleteSeeOnlyThePrefix) {
  Client& c = client(settings());
  for (const char* key : {"blobs/sha256/a", "blobs/sha256/b", "blobs/sha256/c", "other/d"}) {
    ASSERT_TRUE(ok(put(c, key, key)));
  }
  Listing page;
  ASSERT_TRUE(ok(run(c.list("blobs/", "", page))));
  std::vector<std::string> keys;
  for (const auto& object : page.objects) keys.push_back(object.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"blobs/sha256/a", "blobs/sha256/b", "blobs/sha256/c"}));
  EXPECT_EQ(page.objects[0].size, std::string("blobs/sha256/a").size());
  EXPECT_TRUE(page.next.empty());
  std::vector<std::string> failed;
  ASSERT_TRUE(
      ok(run(c.remove_batch({"blobs/sha256/a", "blobs/sha256/c", "blobs/sha256/none"}, failed))));
  EXPECT_TRUE(failed.empty());
  ASSERT_TRUE(ok(run(c.list("", "", page))));
  keys.clear();
  for (const auto& object : page.objects) keys.push_back(object.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"blobs/sha256/b", "other/d"}));
  ASSERT_TRUE(ok(run(c.remove("blobs/sha256/b"))));
  ASSERT_TRUE(ok(run(c.remove("blobs/sha256/b"))));  // gone already: still a success
}

// --- through the fault proxy ---------------------------------------------------------------

class S3ClientFaultTest : public S3ClientPeerTest {
 protected:
  void SetUp() override {
    S3ClientPeerTest::SetUp();
    if (IsSkipped()) return;
    if (env("PT_S3_PROXY").empty()) GTEST_SKIP() << "no fault proxy";
    fault("reset");
  }
  void TearDown() override {
    if (!IsSkipped()) fault("reset");
    S3ClientPeerTest::TearDown();
  }
};

TEST_F(S3ClientFaultTest, ASlowDownBurstIsRetried) {
  Client& c = client(settings(true));
  fault("slowdown 3 PUT");
  ASSERT_TRUE(ok(put(c, "blobs/sha256/slow", "patience")));
  EXPECT_EQ(retries(Operation::put), 3U);
  EXPECT_EQ(requests(Operation::put, StatusClass::server_error), 3U);
  std::string back;
  ASSERT_TRUE(ok(run(c.get_all("blobs/sha256/slow", 100, back))));
  EXPECT_EQ(back, "patience");
}

TEST_F(S3ClientFaultTest, SlowDownPastTheRetryBudgetFailsWithItsCode) {
  auto s = settings(true);
  s.max_retries = 2;
  Client& c = client(s);
  fault("slowdown 10 PUT");
  Outcome outcome = put(c, "blobs/sha256/slower", "patience");
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 503U);
  EXPECT_EQ(outcome->code, "SlowDown");
  EXPECT_THAT(outcome->message, HasSubstr("blobs/sha256/slower"));
  EXPECT_EQ(retries(Operation::put), 2U);
}

TEST_F(S3ClientFaultTest, AStalledGetTimesOutAndIsAskedAgain) {
  auto s = settings(true);
  s.timeout = std::chrono::milliseconds(500);
  Client& c = client(s);
  const std::string bytes = random_bytes(5000, 3);
  ASSERT_TRUE(ok(put(c, "blobs/sha256/stalled", bytes)));
  fault("stall_get 1");
  Outcome outcome;
  bool failed = false;
  EXPECT_EQ(get(c, "blobs/sha256/stalled", 0, bytes.size(), outcome, failed), bytes);
  EXPECT_FALSE(outcome);
  EXPECT_EQ(retries(Operation::get), 1U);
  EXPECT_EQ(requests(Operation::get, StatusClass::no_response), 1U);
}

TEST_F(S3ClientFaultTest, AGetStalledInItsBodyResumesWhereItStopped) {
  auto s = settings(true);
  s.timeout = std::chrono::milliseconds(500);
  Client& c = client(s);
  const std::string bytes = random_bytes(400000, 4);
  ASSERT_TRUE(ok(put(c, "blobs/sha256/resumed", bytes)));
  fault("stall_get_body 1 150000");
  Outcome outcome;
  bool failed = false;
  std::string back = get(c, "blobs/sha256/resumed", 0, bytes.size(), outcome, failed);
  EXPECT_FALSE(failed);
  EXPECT_TRUE(back == bytes) << "got " << back.size() << " bytes";
  EXPECT_EQ(retries(Operation::get), 1U);
}

TEST_F(S3ClientFaultTest, AGetThatKeepsStallingFailsInsteadOfEndingShort) {
  auto s = settings(true);
  s.timeout = std::chrono::milliseconds(300);
  s.max_retries = 1;
  Client& c = client(s);
  const std::string bytes = random_bytes(400000, 5);
  ASSERT_TRUE(ok(put(c, "blobs/sha256/cut", bytes)));
  fault("stall_get_body 5 100000");
  Outcome outcome;
  bool failed = false;
  std::string back = get(c, "blobs/sha256/cut", 0, bytes.size(), outcome, failed);
  EXPECT_FALSE(outcome);
  EXPECT_TRUE(failed);  // the reader says so: a short body is never passed off as the end
  EXPECT_LT(back.size(), bytes.size());
}

TEST_F(S3ClientFaultTest, AConnectionResetDuringAnUploadIsRetried) {
  Client& c = client(settings(true));
  const std::string bytes = random_bytes(1 << 20, 6);
  fault("reset_upload 100000");
  ASSERT_TRUE(ok(put(c, "blobs/sha256/reset", bytes)));
  EXPECT_GE(retries(Operation::put), 1U);
  std::string back;
  ASSERT_TRUE(ok(run(c.get_all("blobs/sha256/reset", 2 << 20, back))));
  EXPECT_TRUE(back == bytes);
}

}  // namespace
}  // namespace pullthrough::proxy::s3
