// The image tool's building blocks against what Python (crit) gives for the same input: the
// JSON writer's escapes and layout, the JSON reader's errors, base64 lines, quoted-printable
// unix socket names. (tests/imgtool/imgtool_test.py compares whole images with crit.)
#include <gtest/gtest.h>

#include "base/error.h"
#include "imgtool/codec.h"
#include "imgtool/json.h"

namespace cryo::imgtool {
namespace {

std::string dump(const json::Value& v, bool pretty) {
  std::string s;
  json::write(s, v, pretty);
  return s;
}

TEST(ImgtoolJson, WritesAsPythonJsonDump) {
  json::Value o = json::Value::object();
  o.add("s", json::Value::string("\x7f\x1f\xc3\xa9\xf0\x9f\x98\x80\"\\/\n\t"));
  o.add("n", json::Value::number("-12"));
  o.add("e", json::Value::array());
  o.add("o", json::Value::object());
  json::Value& l = o.add("l", json::Value::array());
  l.items.push_back(json::Value::of_bool(true));
  l.items.push_back(json::Value::null());
  // json.dumps(..., ensure_ascii=True): lower-case \u escapes, surrogate pairs, "/" as is.
  EXPECT_EQ(dump(o, false),
            R"({"s": "\u007f\u001f\u00e9\ud83d\ude00\"\\/\n\t", "n": -12, "e": [], "o": {}, )"
            R"("l": [true, null]})");
  EXPECT_EQ(dump(o, true),
            "{\n    \"s\": \"\\u007f\\u001f\\u00e9\\ud83d\\ude00\\\"\\\\/\\n\\t\",\n"
            "    \"n\": -12,\n    \"e\": [],\n    \"o\": {},\n    \"l\": [\n        true,\n"
            "        null\n    ]\n}");
}

TEST(ImgtoolJson, BytesThatAreNotUtf8RoundTrip) {
  std::string raw = "a\xff\xc3(b";
  std::string text = dump(json::Value::string(raw), false);
  EXPECT_EQ(text, R"("a\udcff\udcc3(b")");
  EXPECT_EQ(json::parse(text).text, raw);
}

TEST(ImgtoolJson, ParsesAndKeepsTheLastDuplicate) {
  json::Value v = json::parse(" {\"a\": 1, \"b\": [1.5e3, \"\\ud83d\\ude00\"], \"a\": 2}\n");
  ASSERT_EQ(v.type, json::Value::Type::kObject);
  EXPECT_EQ(v.find("a")->text, "2");
  EXPECT_EQ(v.find("b")->items[0].text, "1.5e3");
  EXPECT_EQ(v.find("b")->items[1].text, "\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("c"), nullptr);
}

TEST(ImgtoolJson, ErrorsNameLineAndColumn) {
  auto err = [](std::string_view s) {
    try {
      json::parse(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(err("{"), "invalid JSON at line 1 column 2: expected a member name in double quotes");
  EXPECT_EQ(err("[1,\n 2,]"), "invalid JSON at line 2 column 4: expected a value");
  EXPECT_EQ(err("{} x"), "invalid JSON at line 1 column 4: extra data after the JSON value");
  EXPECT_EQ(err("\"a\tb\""), "invalid JSON at line 1 column 3: control character in a string");
  EXPECT_EQ(err("01"), "invalid JSON at line 1 column 2: extra data after the JSON value");
  EXPECT_EQ(err(""), "invalid JSON at line 1 column 1: unexpected end of input");
  EXPECT_EQ(err(std::string(600, '[')), "invalid JSON at line 1 column 514: nested too deeply");
}

TEST(ImgtoolCodec, Base64LinesAsEncodebytes) {
  std::string data;
  for (int i = 0; i < 60; i++) data += static_cast<char>(i);
  EXPECT_EQ(base64_lines(""), "");
  EXPECT_EQ(base64_lines("A"), "QQ==\n");
  EXPECT_EQ(base64_lines(data),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\n"
            "OTo7\n");
  EXPECT_EQ(base64_decode(base64_lines(data)), data);
  EXPECT_EQ(base64_decode("QQ==QUJD"), "A");  // data after the padding is ignored
  EXPECT_THROW(base64_decode("QUJDR"), Error);
}

TEST(ImgtoolCodec, UnixNamesAsQuopri) {
  // quopri.encodestring() of each.
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"/tmp/a.sock", "/tmp/a.sock"},
      {std::string("\0abstract", 9), "=00abstract"},
      {"a=b", "a=3Db"},
      {"x ", "x=20"},
      {"x \ny", "x=20\ny"},
      {".", "=2E"},
      {"a.\n.", "a.\n=2E"},
      {"\t", "=09"},
      {"caf\xc3\xa9", "caf=C3=A9"},
      {std::string(80, 'A'), std::string(75, 'A') + "=\n" + std::string(5, 'A')},
      {std::string(74, 'B') + "==", std::string(74, 'B') + "=\n=3D=3D"},
  };
  for (const auto& [raw, qp] : cases) {
    EXPECT_EQ(qp_encode(raw), qp);
    EXPECT_EQ(qp_decode(qp), raw);
  }
}

}  // namespace
}  // namespace cryo::imgtool
