// The challenges clients are shown: Bearer realms pointed at the appliance's token endpoint.
#include "proxy/access/challenges.hpp"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/text.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::proxy {
namespace {

using Params = std::map<std::string, std::string>;

constexpr std::string_view kDockerHub =
    R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
    R"(scope="repository:library/alpine:pull")";
constexpr std::string_view kQuay = R"(Bearer realm="https://quay.io/v2/auth",service="quay.io")";
constexpr std::string_view kGhcr =
    R"(Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/i:pull")";
constexpr std::string_view kGitLab =
    R"(Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",)"
    R"(scope="repository:group/project:pull",error="insufficient_scope")";

// The property every rewrite keeps: the value parses again, to the same challenges with the same
// parameters, but each Bearer realm, which names the appliance's endpoint on `host`.
void expect_same_but_realm(std::string_view original, const std::string& rewritten,
                           std::string_view host) {
  const auto before = parse_challenges(original);
  const auto after = parse_challenges(rewritten);
  ASSERT_TRUE(before) << original;
  ASSERT_TRUE(after) << rewritten;
  ASSERT_EQ(before->size(), after->size()) << rewritten;
  for (std::size_t i = 0; i < before->size(); ++i) {
    Challenge expected = (*before)[i];
    const Challenge& got = (*after)[i];
    if (expected.scheme == "bearer" && expected.params.contains("realm")) {
      expected.params["realm"] = "https://" + std::string(host) + "/v2/_pullthrough/token";
    }
    EXPECT_EQ(got.scheme, expected.scheme) << rewritten;
    EXPECT_EQ(got.params, expected.params) << rewritten;
    EXPECT_EQ(got.token68, expected.token68) << rewritten;
  }
}

TEST(FormatChallengeTest, RealmFirstThenTheOtherParametersQuoted) {
  const Challenge challenge{
      "bearer", {{"scope", "repository:a:pull"}, {"realm", "https://r/t"}, {"error", "x"}}, ""};
  EXPECT_EQ(format_challenge(challenge),
            R"(Bearer realm="https://r/t", error="x", scope="repository:a:pull")");
}

TEST(FormatChallengeTest, QuotesAndBackslashesAreEscaped) {
  const Challenge challenge{"basic", {{"realm", R"(a "quoted" \ realm)"}}, ""};
  EXPECT_EQ(format_challenge(challenge), R"(Basic realm="a \"quoted\" \\ realm")");
}

TEST(FormatChallengeTest, ControlCharactersCannotBeCarriedAndAreLeftOut) {
  const Challenge challenge{"basic", {{"realm", "a\r\nInjected: yes\x7f\tb"}}, ""};
  EXPECT_EQ(format_challenge(challenge), "Basic realm=\"aInjected: yes\tb\"");
}

TEST(FormatChallengeTest, Token68AndBareSchemesAreKept) {
  EXPECT_EQ(format_challenge(Challenge{"negotiate", {}, "YIIB+g=="}), "Negotiate YIIB+g==");
  EXPECT_EQ(format_challenge(Challenge{"basic", {}, ""}), "Basic");
  EXPECT_EQ(format_challenge(Challenge{"basic", {{"charset", "UTF-8"}}, ""}),
            R"(Basic charset="UTF-8")");
}

TEST(FormatChallengeTest, RealChallengesParseBackToThemselves) {
  for (std::string_view value :
       {kDockerHub, kQuay, kGhcr, kGitLab, std::string_view(R"(Basic realm="Registry Realm")"),
        std::string_view(R"(Basic realm = "x\"y\\z" , charset=UTF-8)"),
        std::string_view("Negotiate abc=="), std::string_view("Bearer")}) {
    const auto parsed = parse_challenges(value);
    ASSERT_TRUE(parsed) << value;
    for (const Challenge& challenge : *parsed) {
      const std::string text = format_challenge(challenge);
      const auto again = parse_challenges(text);
      ASSERT_TRUE(again) << text;
      ASSERT_EQ(again->size(), 1u) << text;
      EXPECT_EQ(again->front().scheme, challenge.scheme) << text;
      EXPECT_EQ(again->front().params, challenge.params) << text;
      EXPECT_EQ(again->front().token68, challenge.token68) << text;
    }
  }
}

TEST(RewriteChallengesTest, DockerHubRealmPointsAtTheAppliance) {
  const auto rewritten = rewrite_challenges(kDockerHub, "registry-1.docker.io");
  ASSERT_TRUE(rewritten);
  EXPECT_EQ(rewritten->value,
            R"(Bearer realm="https://registry-1.docker.io/v2/_pullthrough/token", )"
            R"(scope="repository:library/alpine:pull", service="registry.docker.io")");
  ASSERT_TRUE(rewritten->realm);
  EXPECT_EQ(rewritten->realm->origin, (Origin{"https", "auth.docker.io", 443}));
  EXPECT_EQ(rewritten->realm->target, "/token");
  expect_same_but_realm(kDockerHub, rewritten->value, "registry-1.docker.io");
}

TEST(RewriteChallengesTest, RealmsOnTheInterceptedHostAreRewrittenToo) {
  auto quay = rewrite_challenges(kQuay, "quay.io");
  ASSERT_TRUE(quay);
  ASSERT_TRUE(quay->realm);
  EXPECT_EQ(quay->realm->origin.host, "quay.io");
  EXPECT_EQ(quay->realm->target, "/v2/auth");
  expect_same_but_realm(kQuay, quay->value, "quay.io");

  auto ghcr = rewrite_challenges(kGhcr, "ghcr.io");
  ASSERT_TRUE(ghcr);
  EXPECT_EQ(ghcr->realm->target, "/token");
  expect_same_but_realm(kGhcr, ghcr->value, "ghcr.io");
}

TEST(RewriteChallengesTest, KeepsErrorAndEveryOtherParameter) {
  const std::string value =
      std::string(kGitLab) + R"(,error_description="token \"x\" expired",custom=tok)";
  auto rewritten = rewrite_challenges(value, "gitlab.example:5050");
  ASSERT_TRUE(rewritten);
  expect_same_but_realm(value, rewritten->value, "gitlab.example:5050");
  const auto parsed = parse_challenges(rewritten->value);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->front().params.at("error"), "insufficient_scope");
  EXPECT_EQ(parsed->front().params.at("error_description"), R"(token "x" expired)");
  EXPECT_EQ(parsed->front().params.at("custom"), "tok");
  EXPECT_EQ(parsed->front().params.at("realm"),
            "https://gitlab.example:5050/v2/_pullthrough/token");
}

TEST(RewriteChallengesTest, BearerAndBasicInOneFieldOnlyBearerRewritten) {
  const std::string value =
      R"(Bearer realm="https://auth.example/token",service="reg", Basic realm="https://x/")";
  auto rewritten = rewrite_challenges(value, "reg.example");
  ASSERT_TRUE(rewritten);
  EXPECT_EQ(rewritten->value,
            R"(Bearer realm="https://reg.example/v2/_pullthrough/token", service="reg", )"
            R"(Basic realm="https://x/")");
  ASSERT_TRUE(rewritten->realm);
  EXPECT_EQ(rewritten->realm->origin.host, "auth.example");
  expect_same_but_realm(value, rewritten->value, "reg.example");
}

TEST(RewriteChallengesTest, BasicOnlyPassesWithNoRealmLearnt) {
  // A Basic realm is a name, not a URL, and is never rewritten.
  auto rewritten = rewrite_challenges(R"(Basic realm="Registry Realm")", "reg.example");
  ASSERT_TRUE(rewritten);
  EXPECT_EQ(rewritten->value, R"(Basic realm="Registry Realm")");
  EXPECT_FALSE(rewritten->realm);
}

TEST(RewriteChallengesTest, FirstBearerRealmIsTheOneLearnt) {
  const std::string value =
      R"(Bearer realm="https://one.example/t", Bearer realm="http://two.example:8080/t2?x=1")";
  auto rewritten = rewrite_challenges(value, "reg.example");
  ASSERT_TRUE(rewritten);
  ASSERT_TRUE(rewritten->realm);
  EXPECT_EQ(rewritten->realm->origin.host, "one.example");
  expect_same_but_realm(value, rewritten->value, "reg.example");
  EXPECT_EQ(rewritten->value.find("two.example"), std::string::npos);
}

TEST(RewriteChallengesTest, RealmQueryAndPortAreKeptInTheLearntRealm) {
  auto rewritten =
      rewrite_challenges(R"(Bearer realm="HTTP://Auth.Example:8080/token?a=b")", "reg.example");
  ASSERT_TRUE(rewritten);
  ASSERT_TRUE(rewritten->realm);
  EXPECT_EQ(rewritten->realm->origin, (Origin{"http", "auth.example", 8080}));
  EXPECT_EQ(rewritten->realm->target, "/token?a=b");
}

TEST(RewriteChallengesTest, BearerWithoutRealmPassesUnchanged) {
  auto rewritten = rewrite_challenges(R"(Bearer error="invalid_token")", "reg.example");
  ASSERT_TRUE(rewritten);
  EXPECT_EQ(rewritten->value, R"(Bearer error="invalid_token")");
  EXPECT_FALSE(rewritten->realm);
  // Right after the scheme, "realm=" is a token68 (RFC 9110 11.2), not an empty realm.
  rewritten = rewrite_challenges("Bearer realm=", "reg.example");
  ASSERT_TRUE(rewritten);
  EXPECT_EQ(rewritten->value, "Bearer realm=");
  EXPECT_FALSE(rewritten->realm);
}

TEST(RewriteChallengesTest, RefusesRealmsThatAreNotAbsoluteHttpUrls) {
  for (const char* realm :
       {"/token", "token", "ftp://auth.example/token", "https://user:pw@auth.example/token",
        "https://auth.example/token#frag", "https:///token", "https://", "https://a b/token",
        "javascript:alert(1)", "https://auth.example:0/token", "https://auth.example:99999/t",
        ""}) {
    const std::string value = std::string(R"(Bearer realm=")") + realm + R"(",service="s")";
    EXPECT_FALSE(rewrite_challenges(value, "reg.example")) << value;
    // One bad Bearer realm refuses the whole field, even after a good one.
    const std::string two = std::string(R"(Bearer realm="https://ok/t", Bearer realm=")") + realm +
                            R"(", Basic realm="x")";
    EXPECT_FALSE(rewrite_challenges(two, "reg.example")) << two;
  }
}

TEST(RewriteChallengesTest, RefusesValuesThatDoNotParse) {
  for (std::string_view value :
       {std::string_view(""), std::string_view(" , "), std::string_view(R"(Bearer realm="x)"),
        std::string_view(R"(Bearer realm="https://a/t",realm="https://b/t")"),
        std::string_view(R"(Bearer realm="https://a/t" junk)")}) {
    EXPECT_FALSE(rewrite_challenges(value, "reg.example")) << value;
  }
}

TEST(RewriteChallengesTest, ClientHostMayCarryAPortOrBeAnIpLiteral) {
  for (const char* host :
       {"reg.example", "reg.example:5000", "REG.Example", "192.0.2.1", "192.0.2.1:443", "[::1]",
        "[2001:db8::1]:8443", "[::ffff:192.0.2.1]", "localhost", "my_host-1.lan:65535"}) {
    auto rewritten = rewrite_challenges(kQuay, host);
    ASSERT_TRUE(rewritten) << host;
    expect_same_but_realm(kQuay, rewritten->value, host);
  }
}

TEST(RewriteChallengesTest, RefusesClientHostsThatDoNotFitHostAndPort) {
  for (std::string_view host : {std::string_view(""),
                                std::string_view("reg.example\r\nX-Injected: 1"),
                                std::string_view("reg.example/evil"),
                                std::string_view("user@reg.example"),
                                std::string_view("reg example"),
                                std::string_view("reg.example\""),
                                std::string_view("reg.example:"),
                                std::string_view("reg.example:0"),
                                std::string_view("reg.example:65536"),
                                std::string_view("reg.example:123456"),
                                std::string_view("reg.example:80:80"),
                                std::string_view(":443"),
                                std::string_view("[::1"),
                                std::string_view("[::1]x"),
                                std::string_view("[::1]:"),
                                std::string_view("[zz::1]"),
                                std::string_view("[192.0.2.1]"),
                                std::string_view("[]"),
                                std::string_view("[fe80::1%eth0]"),
                                std::string_view("::1"),
                                std::string_view("r\xc3\xa9g.example"),
                                std::string_view("reg.example?x"),
                                std::string_view("reg.example#x"),
                                std::string_view("a\0b", 3)}) {
    EXPECT_FALSE(rewrite_challenges(kQuay, host)) << core::printable(host, 80);
  }
  EXPECT_FALSE(rewrite_challenges(kQuay, std::string(301, 'a')));
  EXPECT_TRUE(rewrite_challenges(kQuay, std::string(253, 'a')));
}

TEST(RewriteChallengesTest, OddQuotingRoundTrips) {
  for (std::string_view value : {
           std::string_view(R"(bearer   realm = "https://a.example/t" ,  service=reg.example)"),
           std::string_view(R"(BEARER Realm="https://a.example/t", Scope="a\"b\\c", ,)"),
           std::string_view(R"(Bearer service=reg.example,realm="https://a.example/t")"),
           std::string_view("Bearer realm=\"https://a.example/t\",\tservice=\"s p a c e\""),
           std::string_view(R"(Bearer realm="https://a.example/t",service="",Negotiate a+b/c==)"),
           std::string_view(R"(Basic, Bearer realm="https://a.example/t", Digest nonce="\"")"),
       }) {
    auto rewritten = rewrite_challenges(value, "reg.example");
    ASSERT_TRUE(rewritten) << value;
    expect_same_but_realm(value, rewritten->value, "reg.example");
  }
}

TEST(RewriteChallengesTest, RefusesWhatWouldGrowPastTheParserLimit) {
  // Unquoted short values gain quotes: a value near the limit grows past it.
  std::string value = R"(Bearer realm="https://a.example/t")";
  for (int i = 0; value.size() < 8150; ++i) value += ",p" + std::to_string(i) + "=v";
  ASSERT_TRUE(parse_challenges(value));
  EXPECT_FALSE(rewrite_challenges(value, "reg.example"));
  // A modest value is fine.
  EXPECT_TRUE(rewrite_challenges(R"(Bearer realm="https://a.example/t",p=v)", "reg.example"));
}

TEST(RealmBookTest, RemembersTheLastRealmPerRegistry) {
  core::testing::FakeClock clock;
  RealmBook book(clock);
  EXPECT_FALSE(book.realm("quay.io"));
  book.record_realm("quay.io", *parse_absolute_url("https://quay.io/v2/auth"));
  book.record_realm("registry-1.docker.io", *parse_absolute_url("https://auth.docker.io/token"));
  book.record_realm("quay.io", *parse_absolute_url("https://quay.io/v2/auth2"));
  ASSERT_TRUE(book.realm("quay.io"));
  EXPECT_EQ(book.realm("quay.io")->target, "/v2/auth2");
  ASSERT_TRUE(book.realm("registry-1.docker.io"));
  EXPECT_EQ(book.realm("registry-1.docker.io")->origin.host, "auth.docker.io");
  EXPECT_FALSE(book.realm("ghcr.io"));
}

TEST(RealmBookTest, RemembersTheLastBaseAnswerWithWhenItWasSeen) {
  core::testing::FakeClock clock;
  RealmBook book(clock);
  EXPECT_FALSE(book.base("quay.io"));
  book.record_base("quay.io", {401, {std::string(kQuay)}, {}});
  const auto first_seen = clock.now();
  clock.advance(std::chrono::seconds(30));

  auto base = book.base("quay.io");
  ASSERT_TRUE(base);
  EXPECT_EQ(base->status, 401u);
  EXPECT_EQ(base->challenges, std::vector<std::string>{std::string(kQuay)});
  EXPECT_EQ(base->seen, first_seen);
  EXPECT_FALSE(book.base("ghcr.io"));

  book.record_base("quay.io", {200, {}, {}});
  base = book.base("quay.io");
  ASSERT_TRUE(base);
  EXPECT_EQ(base->status, 200u);
  EXPECT_TRUE(base->challenges.empty());
  EXPECT_EQ(base->seen, clock.now());
}

TEST(RealmBookTest, ConcurrentRecordsAndReads) {
  core::testing::FakeClock clock;
  RealmBook book(clock);
  const auto realm = *parse_absolute_url("https://auth.example/token");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&book, &realm, t] {
      const std::string host = "h" + std::to_string(t % 2);
      for (int i = 0; i < 1000; ++i) {
        book.record_realm(host, realm);
        book.record_base(host, {401, {"Basic"}, {}});
        EXPECT_TRUE(book.realm(host));
        EXPECT_TRUE(book.base(host));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(book.realm("h0")->origin.host, "auth.example");
}

}  // namespace
}  // namespace pullthrough::proxy
