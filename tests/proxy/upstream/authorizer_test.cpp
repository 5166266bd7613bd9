// The Authorizer with no sockets: token requests go to a scripted realm, time is a FakeClock.
#include "proxy/upstream/authorizer.hpp"

#include "core/asio.hpp"

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"
#include "tests/proxy/scripted_upstream.hpp"

namespace pullthrough::proxy {
namespace {

using testing::ScriptedReply;

struct TokenRequest {
  std::string url;
  std::string authorization;
};

http::response_header<> challenge(const std::string& value) {
  http::response_header<> header;
  header.result(401);
  header.insert(http::field::www_authenticate, value);
  return header;
}

const std::string kBearer =
    R"(Bearer realm="https://auth.example/token",service="registry.example",)"
    R"(scope="repository:team/app:pull")";

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.host = "registry.example";
    registry_.upstream = config::UpstreamUrl{"https", "registry.example", 443};
  }

  void with_credentials() {
    registry_.credentials = config::Credentials{"robot", "unused"};
    password_ = "s3cret";
  }

  std::unique_ptr<Authorizer> make() {
    return std::make_unique<Authorizer>(
        registry_, password_, clock_,
        [this](const Origin& origin, const std::string& target,
               const std::string& authorization) -> asio::awaitable<UpstreamResult> {
          requests_.push_back({origin.url() + target, authorization});
          co_return testing::scripted_result(realm_reply_, true, origin.url() + target);
        },
        fetched_);
  }

  static ScriptedReply token_reply(const std::string& token, int expires_in) {
    ScriptedReply reply;
    reply.body = R"({"token":")" + token + R"(","expires_in":)" + std::to_string(expires_in) + "}";
    return reply;
  }

  Authorizer::Answer answer(Authorizer& authorizer, const std::string& header_value,
                            const std::string& repository, const std::string& sent = {}) {
    auto found = authorizer.usable_challenge(challenge(header_value), sent);
    Authorizer::Answer out;
    if (!found) return out;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          out = co_await authorizer.answer(*found, repository, sent);
        },
        asio::detached);
    io_.restart();
    io_.run();
    return out;
  }

  config::RegistryConfig registry_;
  std::string password_;
  core::testing::FakeClock clock_;
  core::Counter fetched_;
  asio::io_context io_;
  ScriptedReply realm_reply_ = token_reply("t1", 300);
  std::vector<TokenRequest> requests_;
};

TEST_F(AuthorizerTest, NothingIsSentBeforeAChallenge) {
  EXPECT_EQ(make()->before_challenge("team/app"), "");
}

TEST_F(AuthorizerTest, ABearerChallengeFetchesATokenAnonymously) {
  auto authorizer = make();
  auto out = answer(*authorizer, kBearer, "team/app");
  ASSERT_TRUE(out.authorization) << (out.failure ? out.failure->error : "no answer");
  EXPECT_EQ(*out.authorization, "Bearer t1");
  ASSERT_EQ(requests_.size(), 1U);
  EXPECT_EQ(
      requests_[0].url,
      "https://auth.example/token?service=registry.example&scope=repository%3Ateam%2Fapp%3Apull");
  EXPECT_EQ(requests_[0].authorization, "");
  EXPECT_EQ(fetched_.value(), 1U);
}

TEST_F(AuthorizerTest, TheTokenIsSentUpFrontUntilItExpiresLessTheMargin) {
  auto authorizer = make();
  ASSERT_TRUE(answer(*authorizer, kBearer, "team/app").authorization);
  EXPECT_EQ(authorizer->before_challenge("team/app"), "Bearer t1");
  EXPECT_EQ(authorizer->before_challenge("team/other"), "");  // another scope: not known yet
  // 300 s less the 10 s margin.
  clock_.advance(std::chrono::seconds(289));
  EXPECT_EQ(authorizer->before_challenge("team/app"), "Bearer t1");
  clock_.advance(std::chrono::seconds(1));
  EXPECT_EQ(authorizer->before_challenge("team/app"), "");
}

TEST_F(AuthorizerTest, ACachedTokenAnswersAnotherRequestWithoutAFetch) {
  auto authorizer = make();
  ASSERT_TRUE(answer(*authorizer, kBearer, "team/app").authorization);
  auto again = answer(*authorizer, kBearer, "team/app");
  ASSERT_TRUE(again.authorization);
  EXPECT_EQ(*again.authorization, "Bearer t1");
  EXPECT_EQ(requests_.size(), 1U);
}

TEST_F(AuthorizerTest, ARefusedTokenIsNotSentAgain) {
  auto authorizer = make();
  ASSERT_TRUE(answer(*authorizer, kBearer, "team/app").authorization);
  realm_reply_ = token_reply("t2", 300);
  auto renewed = answer(*authorizer, kBearer, "team/app", "Bearer t1");
  ASSERT_TRUE(renewed.authorization);
  EXPECT_EQ(*renewed.authorization, "Bearer t2");
  EXPECT_EQ(requests_.size(), 2U);
}

TEST_F(AuthorizerTest, CredentialsGoToATlsRealmByBasic) {
  with_credentials();
  auto authorizer = make();
  ASSERT_TRUE(answer(*authorizer, kBearer, "team/app").authorization);
  ASSERT_EQ(requests_.size(), 1U);
  EXPECT_EQ(requests_[0].authorization, "Basic cm9ib3Q6czNjcmV0");  // robot:s3cret
}

TEST_F(AuthorizerTest, CredentialsNeverGoToAPlainHttpRealmOfATlsRegistry) {
  with_credentials();
  auto authorizer = make();
  auto out =
      answer(*authorizer, R"(Bearer realm="http://auth.example/token",service="r")", "team/app");
  EXPECT_FALSE(out.authorization);
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->failure, UpstreamFailure::auth);
  EXPECT_NE(out.failure->error.find("plain http"), std::string::npos);
  EXPECT_TRUE(requests_.empty());
}

TEST_F(AuthorizerTest, AScopelessChallengeGetsTheRepositorysPullScope) {
  auto authorizer = make();
  ASSERT_TRUE(answer(*authorizer, R"(Bearer realm="https://auth.example/token",service="s")", "a/b")
                  .authorization);
  ASSERT_EQ(requests_.size(), 1U);
  EXPECT_NE(requests_[0].url.find("scope=repository%3Aa%2Fb%3Apull"), std::string::npos)
      << requests_[0].url;
}

TEST_F(AuthorizerTest, ABasicChallengeIsAnsweredOnlyWithCredentialsNotYetRefused) {
  EXPECT_FALSE(make()->usable_challenge(challenge(R"(Basic realm="r")"), ""));
  with_credentials();
  auto authorizer = make();
  auto out = answer(*authorizer, R"(Basic realm="r")", "team/app");
  ASSERT_TRUE(out.authorization);
  EXPECT_EQ(*out.authorization, "Basic cm9ib3Q6czNjcmV0");
  // Sent up front from now on, and not offered again once refused.
  EXPECT_EQ(authorizer->before_challenge("team/app"), "Basic cm9ib3Q6czNjcmV0");
  EXPECT_FALSE(authorizer->usable_challenge(challenge(R"(Basic realm="r")"), *out.authorization));
}

TEST_F(AuthorizerTest, BearerIsPreferredWhenBothAreOffered) {
  with_credentials();
  auto authorizer = make();
  auto found = authorizer->usable_challenge(challenge(R"(Basic realm="r", )" + kBearer), "");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->scheme, "bearer");
}

TEST_F(AuthorizerTest, AnUnusableRealmAnswerIsAnAuthFailure) {
  auto authorizer = make();
  realm_reply_ = testing::status_reply(500);
  auto out = answer(*authorizer, kBearer, "team/app");
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->error.find("answered 500"), std::string::npos) << out.failure->error;

  realm_reply_ = ScriptedReply{};
  realm_reply_.body = R"({"nothing":"here"})";
  out = answer(*authorizer, kBearer, "team/app");
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->error.find("no usable token"), std::string::npos);

  realm_reply_ = ScriptedReply{};
  realm_reply_.unreachable = true;
  out = answer(*authorizer, kBearer, "team/app");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->failure, UpstreamFailure::auth);
  EXPECT_EQ(fetched_.value(), 0U);
}

TEST_F(AuthorizerTest, TheTokenCacheIsBounded) {
  auto authorizer = make();
  for (std::size_t i = 0; i <= Authorizer::kMaxCachedTokens; ++i) {
    std::string repository = "r/" + std::to_string(i);
    ASSERT_TRUE(
        answer(*authorizer,
               R"(Bearer realm="https://auth.example/token",service="s",scope="repository:)" +
                   repository + R"(:pull")",
               repository)
            .authorization);
  }
  // One entry (the first in key order) made room for the last; the cache never passes its bound.
  EXPECT_EQ(authorizer->before_challenge("r/0"), "");
  EXPECT_EQ(authorizer->before_challenge("r/" + std::to_string(Authorizer::kMaxCachedTokens)),
            "Bearer t1");
}

}  // namespace
}  // namespace pullthrough::proxy
