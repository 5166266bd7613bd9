#include "proxy/s3/xml.hpp"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pullthrough::proxy::s3 {
namespace {

using ::testing::HasSubstr;

XmlElement parse_ok(const std::string& text) {
  std::string error;
  auto root = parse_xml(text, error);
  EXPECT_TRUE(root) << error;
  return root ? *root : XmlElement{};
}

std::string parse_error(const std::string& text, XmlLimits limits = {}) {
  std::string error;
  auto root = parse_xml(text, error, limits);
  EXPECT_FALSE(root) << text;
  return error;
}

TEST(S3XmlTest, ReadsAnS3ErrorDocument) {
  auto root = parse_ok(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
      "<Key>cache/blobs/sha256/ab</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>");
  EXPECT_EQ(root.name, "Error");
  EXPECT_EQ(root.text_of("Code"), "NoSuchKey");
  EXPECT_EQ(root.text_of("Key"), "cache/blobs/sha256/ab");
  EXPECT_EQ(root.text_of("BucketName"), "");
  EXPECT_EQ(root.find("BucketName"), nullptr);
}

TEST(S3XmlTest, DropsNamespacesAndAttributes) {
  auto root = parse_ok(
      "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
      "  <Bucket>b</Bucket>\n  <s3:Key a='1' b = \"2\">k</s3:Key>\n"
      "  <UploadId>VXBsb2FkIElE</UploadId>\n</InitiateMultipartUploadResult>\n");
  EXPECT_EQ(root.name, "InitiateMultipartUploadResult");
  EXPECT_EQ(root.text_of("Key"), "k");
  EXPECT_EQ(root.text_of("UploadId"), "VXBsb2FkIElE");
  ASSERT_EQ(root.children.size(), 3U);
}

TEST(S3XmlTest, DecodesEntitiesCharacterReferencesAndCdata) {
  auto root = parse_ok(
      "<R><K>a&lt;b&gt;c&amp;d&quot;e&apos;f</K><U>&#xE1;&#4660;&#65;</U>"
      "<C><![CDATA[<raw & text>]]></C><E/><M>one<!-- note -->two</M></R>");
  EXPECT_EQ(root.text_of("K"), "a<b>c&d\"e'f");
  EXPECT_EQ(root.text_of("U"),
            "\xC3\xA1\xE1\x88\xB4"
            "A");
  EXPECT_EQ(root.text_of("C"), "<raw & text>");
  ASSERT_NE(root.find("E"), nullptr);
  EXPECT_EQ(root.text_of("E"), "");
  EXPECT_EQ(root.text_of("M"), "onetwo");
}

TEST(S3XmlTest, KeepsRepeatedElementsInOrder) {
  auto root = parse_ok(
      "<ListBucketResult><IsTruncated>true</IsTruncated>"
      "<Contents><Key>a</Key><Size>1</Size></Contents>"
      "<Contents><Key>b</Key><Size>22</Size></Contents>"
      "<NextContinuationToken>t==</NextContinuationToken></ListBucketResult>");
  std::vector<std::string> keys;
  for (const auto& child : root.children) {
    if (child.name == "Contents")
      keys.push_back(child.text_of("Key") + "/" + child.text_of("Size"));
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a/1", "b/22"}));
  EXPECT_EQ(root.text_of("NextContinuationToken"), "t==");
}

// No DTD means no entity expansion ("billion laughs") and no external entities.
TEST(S3XmlTest, RefusesDocumentTypeDeclarations) {
  EXPECT_THAT(parse_error("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">]><r>&a;</r>"),
              HasSubstr("document type"));
  EXPECT_THAT(parse_error("<r>&a;</r>"), HasSubstr("unknown entity"));
  EXPECT_THAT(parse_error("<r><!ENTITY a \"x\"></r>"), HasSubstr("markup declarations"));
}

TEST(S3XmlTest, RefusesMalformedDocuments) {
  EXPECT_THAT(parse_error(""), HasSubstr("no root element"));
  EXPECT_THAT(parse_error("just text"), HasSubstr("no root element"));
  EXPECT_THAT(parse_error("<a><b></a></b>"), HasSubstr("closes"));
  EXPECT_THAT(parse_error("<a>"), HasSubstr("unterminated element"));
  EXPECT_THAT(parse_error("<a></a><b></b>"), HasSubstr("after the root"));
  EXPECT_THAT(parse_error("<a x=1></a>"), HasSubstr("quoted attribute"));
  EXPECT_THAT(parse_error("<a x=\"1\"y=\"2\"></a>"), HasSubstr("white space"));
  EXPECT_THAT(parse_error("<a x=\"<\"></a>"), HasSubstr("'<'"));
  EXPECT_THAT(parse_error("<a>&#0;</a>"), HasSubstr("excludes"));
  EXPECT_THAT(parse_error("<a>&#xD800;</a>"), HasSubstr("excludes"));
  EXPECT_THAT(parse_error("<a>&#x110000;</a>"), HasSubstr("out of range"));
  EXPECT_THAT(parse_error("<a>&#xZZ;</a>"), HasSubstr("bad character reference"));
  EXPECT_THAT(parse_error("<a>&amp</a>"), HasSubstr("unterminated reference"));
  EXPECT_THAT(parse_error("<1a></1a>"), HasSubstr("expected a name"));
  // Found by s3_xml_fuzz: a prefix before a local part that is not a name.
  EXPECT_THAT(parse_error("<\xAD"
                          "4125:241/>"),
              HasSubstr("local part"));
  EXPECT_THAT(parse_error("<a:></a:>"), HasSubstr("local part"));
  EXPECT_THAT(parse_error("<a><!-- open</a>"), HasSubstr("unterminated comment"));
  EXPECT_THAT(parse_error("<a><![CDATA[x</a>"), HasSubstr("CDATA"));
}

TEST(S3XmlTest, BoundsDepthAndElementCount) {
  XmlLimits limits;
  limits.max_depth = 3;
  limits.max_elements = 5;
  parse_ok("<a><b><c/></b></a>");
  EXPECT_THAT(parse_error("<a><b><c><d/></c></b></a>", limits), HasSubstr("nested too deeply"));
  EXPECT_THAT(parse_error("<a><b/><b/><b/><b/><b/></a>", limits), HasSubstr("too many"));
  std::string error;
  EXPECT_TRUE(parse_xml("<a><b/><b/><b/><b/></a>", error, limits)) << error;
  // The default depth bound holds for a document built to overflow a naive recursive reader.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  EXPECT_THAT(parse_error(deep), HasSubstr("nested too deeply"));
}

TEST(S3XmlTest, ErrorsSayWhere) { EXPECT_THAT(parse_error("<a></b>"), HasSubstr("at byte")); }

TEST(S3XmlTest, EscapesText) {
  EXPECT_EQ(xml_escape("a<b>&c\"d"), "a&lt;b&gt;&amp;c\"d");
  auto root = parse_ok("<Key>" + xml_escape("x&<y>") + "</Key>");
  EXPECT_EQ(root.text, "x&<y>");
}

}  // namespace
}  // namespace pullthrough::proxy::s3
