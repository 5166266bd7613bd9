#include "proxy/upstream/auth_challenge.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

using std::chrono::seconds;

// Parses a value that must hold exactly one challenge.
Challenge parse_one(std::string_view value) {
  auto challenges = parse_challenges(value);
  EXPECT_TRUE(challenges.has_value()) << value;
  if (!challenges) return {};
  EXPECT_EQ(challenges->size(), 1u) << value;
  if (challenges->empty()) return {};
  return challenges->front();
}

Challenge bearer(std::map<std::string, std::string> params) {
  return Challenge{"bearer", std::move(params), ""};
}

TEST(AuthChallengeTest, DockerHubBearerChallenge) {
  const Challenge challenge =
      parse_one(R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
                R"(scope="repository:library/alpine:pull")");
  EXPECT_EQ(challenge.scheme, "bearer");
  EXPECT_TRUE(challenge.token68.empty());
  const std::map<std::string, std::string> expected = {
      {"realm", "https://auth.docker.io/token"},
      {"service", "registry.docker.io"},
      {"scope", "repository:library/alpine:pull"},
  };
  EXPECT_EQ(challenge.params, expected);
}

TEST(AuthChallengeTest, GhcrBearerChallenge) {
  const Challenge challenge = parse_one(R"(Bearer realm="https://ghcr.io/token",service="ghcr.io",)"
                                        R"(scope="repository:user/image:pull")");
  EXPECT_EQ(challenge.scheme, "bearer");
  EXPECT_EQ(challenge.params.at("realm"), "https://ghcr.io/token");
  EXPECT_EQ(challenge.params.at("service"), "ghcr.io");
  EXPECT_EQ(challenge.params.at("scope"), "repository:user/image:pull");
}

TEST(AuthChallengeTest, BasicThenBearerInOneValue) {
  const auto challenges = parse_challenges(R"(Basic realm="x", Bearer realm="y",service="z")");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_EQ((*challenges)[0].scheme, "basic");
  EXPECT_EQ((*challenges)[0].params, (std::map<std::string, std::string>{{"realm", "x"}}));
  EXPECT_EQ((*challenges)[1].scheme, "bearer");
  EXPECT_EQ((*challenges)[1].params,
            (std::map<std::string, std::string>{{"realm", "y"}, {"service", "z"}}));
}

TEST(AuthChallengeTest, ChallengeBoundaryWithoutSpaceAfterComma) {
  const auto challenges = parse_challenges(R"(Bearer realm="y",scope="s",Basic realm="x")");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_EQ((*challenges)[0].params.size(), 2u);
  EXPECT_EQ((*challenges)[1].scheme, "basic");
  EXPECT_EQ((*challenges)[1].params.at("realm"), "x");
}

TEST(AuthChallengeTest, SchemeWithoutParameters) {
  const auto challenges = parse_challenges(R"(Basic, Bearer realm="y", Negotiate)");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 3u);
  EXPECT_EQ((*challenges)[0].scheme, "basic");
  EXPECT_TRUE((*challenges)[0].params.empty());
  EXPECT_EQ((*challenges)[1].params.at("realm"), "y");
  EXPECT_EQ((*challenges)[2].scheme, "negotiate");
  EXPECT_TRUE((*challenges)[2].params.empty());
  EXPECT_TRUE((*challenges)[2].token68.empty());
}

TEST(AuthChallengeTest, CaseInsensitiveSchemeAndParamNames) {
  const Challenge challenge = parse_one(R"(BEARER Realm="https://A.example/Token",SERVICE=Reg)");
  EXPECT_EQ(challenge.scheme, "bearer");
  // Names fold to lower case; values keep theirs.
  EXPECT_EQ(challenge.params.at("realm"), "https://A.example/Token");
  EXPECT_EQ(challenge.params.at("service"), "Reg");
}

TEST(AuthChallengeTest, QuotedPairIsUnescaped) {
  EXPECT_EQ(parse_one(R"(Basic realm="a\"b")").params.at("realm"), "a\"b");
  EXPECT_EQ(parse_one(R"(Basic realm="a\\b")").params.at("realm"), "a\\b");
  EXPECT_EQ(parse_one(R"(Basic realm="\a\b\c")").params.at("realm"), "abc");
  EXPECT_EQ(parse_one(R"(Basic realm="")").params.at("realm"), "");
  // Commas and '=' inside quotes belong to the value, not to the list or a parameter.
  EXPECT_EQ(parse_one(R"(Basic realm="a, b=c")").params.at("realm"), "a, b=c");
}

TEST(AuthChallengeTest, TokenValuesAndWhitespaceAroundEquals) {
  const Challenge challenge = parse_one("Bearer realm = x ,\terror=invalid_token");
  EXPECT_EQ(challenge.params.at("realm"), "x");
  EXPECT_EQ(challenge.params.at("error"), "invalid_token");
}

TEST(AuthChallengeTest, Token68Form) {
  const Challenge challenge = parse_one("Negotiate abc123==");
  EXPECT_EQ(challenge.scheme, "negotiate");
  EXPECT_EQ(challenge.token68, "abc123==");
  EXPECT_TRUE(challenge.params.empty());

  const auto challenges = parse_challenges(R"(Negotiate a+b/c=, Basic realm="x")");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_EQ((*challenges)[0].token68, "a+b/c=");
  EXPECT_EQ((*challenges)[1].params.at("realm"), "x");
}

TEST(AuthChallengeTest, EmptyListElementsAreSkipped) {
  const auto challenges = parse_challenges(R"( , Basic realm="x",, ,Bearer realm="y", ,)");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_EQ((*challenges)[0].params.at("realm"), "x");
  EXPECT_EQ((*challenges)[1].params.at("realm"), "y");
}

TEST(AuthChallengeTest, SameParamInDifferentChallengesIsAllowed) {
  const auto challenges = parse_challenges(R"(Basic realm="x", Basic realm="y")");
  ASSERT_TRUE(challenges.has_value());
  EXPECT_EQ(challenges->size(), 2u);
}

TEST(AuthChallengeTest, RejectsEmptyAndBlankValues) {
  for (const char* value : {"", " ", "\t ", ",", " , ,"}) {
    EXPECT_FALSE(parse_challenges(value).has_value()) << '"' << value << '"';
  }
}

TEST(AuthChallengeTest, RejectsUnterminatedQuote) {
  EXPECT_FALSE(parse_challenges(R"(Bearer realm="https://auth.docker.io/token)").has_value());
  EXPECT_FALSE(parse_challenges(R"(Bearer realm="abc\")").has_value());
  EXPECT_FALSE(parse_challenges(R"(Bearer realm="abc\)").has_value());
}

TEST(AuthChallengeTest, RejectsDuplicateParam) {
  EXPECT_FALSE(parse_challenges(R"(Bearer realm="a",realm="b")").has_value());
  EXPECT_FALSE(parse_challenges(R"(Bearer realm="a", REALM="a")").has_value());
}

TEST(AuthChallengeTest, RejectsParamWithoutValue) {
  for (const char* value :
       {"=", "Bearer =", "Bearer =x", "Bearer = ", R"(Bearer realm="x",service=)",
        R"(Bearer realm="x",service=,scope="y")", R"(Bearer realm="x", service =)",
        "Bearer realm==x", R"(Bearer realm="x", Basic =)"}) {
    EXPECT_FALSE(parse_challenges(value).has_value()) << value;
  }
}

TEST(AuthChallengeTest, AmbiguousFormsFollowTheGrammar) {
  // As the first thing after a scheme, "realm=" fits token68 (RFC 9110 11.2), not a parameter.
  const Challenge padded = parse_one("Bearer realm=");
  EXPECT_EQ(padded.token68, "realm=");
  EXPECT_TRUE(padded.params.empty());
  // A lone token after a comma is a new scheme, not a parameter that lost its value.
  const auto challenges = parse_challenges(R"(Bearer realm="x", service)");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_EQ((*challenges)[1].scheme, "service");
  // Either way the Bearer challenge lacks what a token request needs, so the 401 stays final.
  EXPECT_FALSE(token_request_url(padded).has_value());
}

TEST(AuthChallengeTest, RejectsBrokenSyntax) {
  for (const char* value : {R"(Bearer realm="x" service="y")", R"(Bearer realm="x"y)",
                            R"(Bearer=x)", R"("Bearer" realm="x")", R"(Bearer realm=x"y")",
                            R"(Be@rer realm="x")", R"(Bearer realm="x";scope="y")"}) {
    EXPECT_FALSE(parse_challenges(value).has_value()) << value;
  }
}

TEST(AuthChallengeTest, RejectsControlCharacters) {
  using namespace std::string_literals;
  for (const std::string& value :
       {"Bearer realm=\"a\nb\""s, "Bearer realm=\"a\177b\""s, "Bearer realm=\"a\\\rb\""s,
        "Bearer realm=\"a\0b\""s, "Bearer realm=\"x\"\r\n"s,
        "Bearer realm=x\r\nSet-Cookie: a=b"s}) {
    EXPECT_FALSE(parse_challenges(value).has_value());
  }
  // HTAB is whitespace, not a control, in a quoted string.
  EXPECT_EQ(parse_one("Basic realm=\"a\tb\"").params.at("realm"), "a\tb");
}

TEST(AuthChallengeTest, KeepsNonAsciiInQuotedStrings) {
  // RFC 9110 5.6.4 allows obs-text (0x80-0xFF) in quoted strings.
  EXPECT_EQ(parse_one("Basic realm=\"caf\xc3\xa9\"").params.at("realm"), "caf\xc3\xa9");
}

TEST(AuthChallengeTest, RejectsOverlongValue) {
  const std::string prefix = R"(Basic realm=")";
  std::string value = prefix + std::string(8192 - prefix.size() - 1, 'a') + '"';
  ASSERT_EQ(value.size(), 8192u);
  EXPECT_TRUE(parse_challenges(value).has_value());
  value.insert(prefix.size(), "a");
  EXPECT_FALSE(parse_challenges(value).has_value());
}

TEST(TokenRequestUrlTest, DockerHub) {
  const Challenge challenge = bearer({{"realm", "https://auth.docker.io/token"},
                                      {"service", "registry.docker.io"},
                                      {"scope", "repository:library/alpine:pull"}});
  EXPECT_EQ(token_request_url(challenge),
            "https://auth.docker.io/token?service=registry.docker.io"
            "&scope=repository%3Alibrary%2Falpine%3Apull");
}

TEST(TokenRequestUrlTest, FromParsedChallenge) {
  const auto challenges =
      parse_challenges(R"(Basic realm="x", Bearer realm="https://ghcr.io/token",service="ghcr.io",)"
                       R"(scope="repository:user/image:pull")");
  ASSERT_TRUE(challenges.has_value());
  ASSERT_EQ(challenges->size(), 2u);
  EXPECT_FALSE(token_request_url((*challenges)[0]).has_value());  // Basic has no token request
  EXPECT_EQ(token_request_url((*challenges)[1]),
            "https://ghcr.io/token?service=ghcr.io&scope=repository%3Auser%2Fimage%3Apull");
}

TEST(TokenRequestUrlTest, RealmWithExistingQuery) {
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://a.example/token?x=1"}, {"service", "s"}})),
            "https://a.example/token?x=1&service=s");
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://a.example/token?"}, {"service", "s"}})),
            "https://a.example/token?service=s");
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://a.example/token?x=1&"}, {"scope", "p"}})),
            "https://a.example/token?x=1&scope=p");
}

TEST(TokenRequestUrlTest, ScopeOverride) {
  const Challenge challenge = bearer({{"realm", "https://auth.docker.io/token"},
                                      {"service", "registry.docker.io"},
                                      {"scope", "repository:library/alpine:pull"}});
  EXPECT_EQ(token_request_url(challenge, "repository:library/busybox:pull"),
            "https://auth.docker.io/token?service=registry.docker.io"
            "&scope=repository%3Alibrary%2Fbusybox%3Apull");
  // The override also applies when the challenge named no scope (e.g. the /v2/ probe).
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}}), "repository:a:pull"),
            "https://r.example/t?scope=repository%3Aa%3Apull");
}

TEST(TokenRequestUrlTest, AbsentParamsAreLeftOut) {
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}})), "https://r.example/t");
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}, {"service", "s"}})),
            "https://r.example/t?service=s");
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}, {"scope", "p"}})),
            "https://r.example/t?scope=p");
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}, {"service", ""}})),
            "https://r.example/t");
  // Parameters the token flow does not use are not forwarded.
  EXPECT_EQ(token_request_url(bearer({{"realm", "https://r.example/t"}, {"error", "e"}})),
            "https://r.example/t");
}

TEST(TokenRequestUrlTest, PercentEncodesOutsideUnreservedSet) {
  EXPECT_EQ(token_request_url(bearer({{"realm", "http://r.example:5000/t"},
                                      {"service", "a-b.c_d~e"},
                                      {"scope", "repository:a:pull repository:b:pull,push&x=y?"}})),
            "http://r.example:5000/t?service=a-b.c_d~e"
            "&scope=repository%3Aa%3Apull%20repository%3Ab%3Apull%2Cpush%26x%3Dy%3F");
  EXPECT_EQ(
      token_request_url(bearer({{"realm", "https://r.example/t"}, {"service", "caf\xc3\xa9"}})),
      "https://r.example/t?service=caf%C3%A9");
}

TEST(TokenRequestUrlTest, AcceptsUpperCaseUrlScheme) {
  EXPECT_EQ(token_request_url(bearer({{"realm", "HTTPS://r.example/t"}, {"service", "s"}})),
            "HTTPS://r.example/t?service=s");
}

TEST(TokenRequestUrlTest, RejectsMissingRealm) {
  EXPECT_FALSE(token_request_url(bearer({{"service", "s"}, {"scope", "p"}})).has_value());
  EXPECT_FALSE(token_request_url(bearer({{"realm", ""}})).has_value());
}

TEST(TokenRequestUrlTest, RejectsRealmThatIsNotAnAbsoluteHttpUrl) {
  for (const char* realm :
       {"ftp://x", "file:///etc/passwd", "/token", "auth.docker.io/token", "https://", "https:///t",
        "https://:443/t", "https//x/t", "https://user:pw@evil.example/t", "https://x/t#frag",
        "https://x/t oken", "https://x/t\r\nHost: y", "https://x/caf\xc3\xa9"}) {
    EXPECT_FALSE(token_request_url(bearer({{"realm", realm}, {"service", "s"}})).has_value())
        << realm;
  }
}

TEST(TokenRequestUrlTest, RejectsNonBearerChallenge) {
  const Challenge basic{"basic", {{"realm", "https://r.example/t"}}, ""};
  EXPECT_FALSE(token_request_url(basic).has_value());
}

TEST(TokenResponseTest, TokenField) {
  const auto token =
      parse_token_response(R"({"token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","expires_in":300,)"
                           R"("issued_at":"2024-01-01T00:00:00Z"})");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->value, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
  EXPECT_EQ(token->expires_in, seconds(300));
}

TEST(TokenResponseTest, AccessTokenFallback) {
  const auto token = parse_token_response(R"({"access_token":"djE6abc==","expires_in":120})");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->value, "djE6abc==");
  EXPECT_EQ(token->expires_in, seconds(120));
}

TEST(TokenResponseTest, TokenPreferredOverAccessToken) {
  const auto token = parse_token_response(R"({"access_token":"b","token":"a"})");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->value, "a");
}

TEST(TokenResponseTest, ExpiresInDefault) {
  const auto token = parse_token_response(R"({"token":"a"})");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->expires_in, seconds(60));
}

TEST(TokenResponseTest, ExpiresInMinimum) {
  for (const char* body : {R"({"token":"a","expires_in":0})", R"({"token":"a","expires_in":59})",
                           R"({"token":"a","expires_in":-5})"}) {
    const auto token = parse_token_response(body);
    ASSERT_TRUE(token.has_value()) << body;
    EXPECT_EQ(token->expires_in, seconds(60)) << body;
  }
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":61})")->expires_in, seconds(61));
}

TEST(TokenResponseTest, ExpiresInCap) {
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":86400})")->expires_in,
            seconds(86400));
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":86401})")->expires_in,
            seconds(86400));
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":18446744073709551615})")->expires_in,
            seconds(86400));
  // Past uint64: nlohmann reads it as a double, which is not an integer.
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":1e30})")->expires_in, seconds(60));
}

TEST(TokenResponseTest, ExpiresInNotAnInteger) {
  for (const char* body :
       {R"({"token":"a","expires_in":"300"})", R"({"token":"a","expires_in":300.5})",
        R"({"token":"a","expires_in":null})", R"({"token":"a","expires_in":true})",
        R"({"token":"a","expires_in":[300]})"}) {
    const auto token = parse_token_response(body);
    ASSERT_TRUE(token.has_value()) << body;
    EXPECT_EQ(token->expires_in, seconds(60)) << body;
  }
}

TEST(TokenResponseTest, RejectsNotJsonObject) {
  for (const char* body : {"", "not json", "{", R"({"token":"a")", "[]", R"(["token"])",
                           R"("token")", "null", "42", R"({"token":"a"} trailing)"}) {
    EXPECT_FALSE(parse_token_response(body).has_value()) << body;
  }
  // Invalid UTF-8 inside a JSON string is a parse error, not an exception.
  EXPECT_FALSE(parse_token_response("{\"token\":\"\xff\"}").has_value());
}

TEST(TokenResponseTest, RejectsMissingOrUnusableToken) {
  for (const char* body :
       {"{}", R"({"expires_in":300})", R"({"token":5})", R"({"token":null})", R"({"token":""})",
        R"({"token":["a"]})", R"({"access_token":""})", R"({"token":{"value":"a"}})",
        R"({"token":5,"access_token":"a"})", R"({"token":"a\r\nX-Evil: 1"})", R"({"token":"a b"})",
        R"({"token":"caf\u00e9"})"}) {
    EXPECT_FALSE(parse_token_response(body).has_value()) << body;
  }
}

TEST(TokenResponseTest, DeepNestingDoesNotCrash) {
  const std::string body = "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(parse_token_response(body).has_value());
}

}  // namespace
}  // namespace pullthrough::proxy
