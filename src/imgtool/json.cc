#include "imgtool/json.h"

#include <cstdint>

#include "base/error.h"

namespace cryo::imgtool::json {

const Value* Value::find(std::string_view key) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it)
    if (it->first == key) return &it->second;
  return nullptr;
}

bool Value::truthy() const {
  switch (type) {
    case Type::kNull:
      return false;
    case Type::kBool:
      return boolean;
    case Type::kNumber:
      return text.find_first_not_of("-+0.eE") != std::string::npos;
    case Type::kString:
      return !text.empty();
    case Type::kArray:
      return !items.empty();
    case Type::kObject:
      return !members.empty();
  }
  return false;
}

const char* Value::kind() const {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "a boolean";
    case Type::kNumber:
      return "a number";
    case Type::kString:
      return "a string";
    case Type::kArray:
      return "a list";
    case Type::kObject:
      return "an object";
  }
  return "?";
}

namespace {

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  bool image(const std::function<void(const Value&)>& on_magic,
             const std::function<void(const Value&)>& on_entry) {
    skip_ws();
    if (!next_is('{')) return false;
    i_++;
    skip_ws();
    if (!member_name("magic")) return false;
    Value magic = value(1);
    skip_ws();
    if (!next_is(',')) return false;
    i_++;
    skip_ws();
    if (!member_name("entries")) return false;
    if (!next_is('[')) return false;
    on_magic(magic);
    i_++;
    skip_ws();
    if (next_is(']')) {
      i_++;
    } else {
      for (;;) {
        skip_ws();
        on_entry(value(2));
        skip_ws();
        if (next_is(',')) {
          i_++;
          continue;
        }
        if (next_is(']')) {
          i_++;
          break;
        }
        error("expected ',' or ']' in a list");
      }
    }
    skip_ws();
    while (next_is(',')) {
      i_++;
      skip_ws();
      if (!next_is('"')) error("expected a member name in double quotes");
      std::string key = string();
      if (key == "magic" || key == "entries") return false;  // the last one counts
      skip_ws();
      if (!next_is(':')) error("expected ':' after a member name");
      i_++;
      skip_ws();
      value(1);
      skip_ws();
    }
    if (!next_is('}')) error("expected ',' or '}' in an object");
    i_++;
    skip_ws();
    if (i_ != s_.size()) error("extra data after the JSON value");
    return true;
  }

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (i_ != s_.size()) error("extra data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); k++) {
      if (s_[k] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    fail("invalid JSON at line {} column {}: {}", line, col, what);
  }

  bool next_is(char c) const { return i_ < s_.size() && s_[i_] == c; }

  // "NAME": (and the blanks after), or false with nothing consumed.
  bool member_name(std::string_view name) {
    size_t save = i_;
    if (!next_is('"') || string() != name) {
      i_ = save;
      return false;
    }
    skip_ws();
    if (!next_is(':')) {
      i_ = save;
      return false;
    }
    i_++;
    skip_ws();
    return true;
  }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      i_++;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  Value value(int depth) {
    if (depth > 512) error("nested too deeply");
    if (i_ >= s_.size()) error("unexpected end of input");
    char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::string(string());
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (literal("true")) return Value::of_bool(true);
    if (literal("false")) return Value::of_bool(false);
    if (literal("null")) return Value::null();
    error("expected a value");
  }

  Value object(int depth) {
    Value v = Value::object();
    i_++;  // {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      i_++;
      return v;
    }
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"') error("expected a member name in double quotes");
      std::string key = string();
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':') error("expected ':' after a member name");
      i_++;
      skip_ws();
      Value m = value(depth + 1);
      v.members.emplace_back(std::move(key), std::move(m));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        i_++;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        i_++;
        return v;
      }
      error("expected ',' or '}' in an object");
    }
  }

  Value array(int depth) {
    Value v = Value::array();
    i_++;  // [
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      i_++;
      return v;
    }
    for (;;) {
      skip_ws();
      v.items.push_back(value(depth + 1));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        i_++;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        i_++;
        return v;
      }
      error("expected ',' or ']' in a list");
    }
  }

  Value number() {
    size_t start = i_;
    auto digits = [&] {
      size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') i_++;
      return i_ - d;
    };
    if (s_[i_] == '-') i_++;
    if (i_ < s_.size() && s_[i_] == '0') {
      i_++;
    } else if (digits() == 0) {
      error("expected digits");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      i_++;
      if (digits() == 0) error("expected digits after '.'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      i_++;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) i_++;
      if (digits() == 0) error("expected digits in the exponent");
    }
    return Value::number(std::string(s_.substr(start, i_ - start)));
  }

  uint32_t hex4() {
    if (i_ + 4 > s_.size()) error("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        error("bad \\u escape");
    }
    return v;
  }

  std::string string() {
    std::string out;
    i_++;  // "
    for (;;) {
      if (i_ >= s_.size()) error("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        i_++;
        return out;
      }
      if (c < 0x20) error("control character in a string");
      if (c != '\\') {  // a run of plain characters at once
        size_t end = i_ + 1;
        while (end < s_.size() && s_[end] != '"' && s_[end] != '\\' &&
               static_cast<unsigned char>(s_[end]) >= 0x20)
          end++;
        out.append(s_.data() + i_, end - i_);
        i_ = end;
        continue;
      }
      i_++;
      if (i_ >= s_.size()) error("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(i_, 2) == "\\u") {
            size_t save = i_;
            i_ += 2;
            uint32_t lo = hex4();
            if (lo >= 0xdc00 && lo < 0xe000) {
              put_utf8(out, 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00));
              break;
            }
            i_ = save;
          }
          if (cp >= 0xdc80 && cp <= 0xdcff) {
            out += static_cast<char>(cp - 0xdc00);  // a byte that is not UTF-8 (see write())
          } else {
            put_utf8(out, cp);
          }
          break;
        }
        default:
          i_--;
          error("bad escape in a string");
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Length of the UTF-8 sequence at s[i], or 0 if it is not well-formed.
size_t utf8_len(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t v, min;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, v = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, v = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) return 0;
  *cp = v;
  return n;
}

void put_u(std::string& out, uint32_t u) {
  static const char kHex[] = "0123456789abcdef";
  out += "\\u";
  for (int sh = 12; sh >= 0; sh -= 4) out += kHex[(u >> sh) & 0xf];
}

void write_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '"' || c == '\\') out += '\\';
      out += static_cast<char>(c);
      i++;
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        i++;
        continue;
      case '\r':
        out += "\\r";
        i++;
        continue;
      case '\t':
        out += "\\t";
        i++;
        continue;
      case '\b':
        out += "\\b";
        i++;
        continue;
      case '\f':
        out += "\\f";
        i++;
        continue;
    }
    if (c < 0x80) {
      put_u(out, c);
      i++;
      continue;
    }
    uint32_t cp;
    size_t n = utf8_len(s, i, &cp);
    if (n == 0) {
      // Not UTF-8: the byte as Python's "surrogateescape" names it, read back as the byte.
      put_u(out, 0xdc00 + c);
      i++;
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put_u(out, 0xd800 + (cp >> 10));
      put_u(out, 0xdc00 + (cp & 0x3ff));
    } else {
      put_u(out, cp);
    }
    i += n;
  }
  out += '"';
}

void write_value(Writer& w, const Value& v) {
  switch (v.type) {
    case Value::Type::kNull:
      w.null();
      return;
    case Value::Type::kBool:
      w.boolean(v.boolean);
      return;
    case Value::Type::kNumber:
      w.number(v.text);
      return;
    case Value::Type::kString:
      w.string(v.text);
      return;
    case Value::Type::kArray:
      w.begin_array();
      for (const Value& item : v.items) write_value(w, item);
      w.end_array();
      return;
    case Value::Type::kObject:
      w.begin_object();
      for (const auto& [k, m] : v.members) {
        w.key(k);
        write_value(w, m);
      }
      w.end_object();
      return;
  }
}

}  // namespace

Value parse(std::string_view text) {
  return Parser(text).document();
}

bool parse_image(std::string_view text, const std::function<void(const Value&)>& on_magic,
                 const std::function<void(const Value&)>& on_entry) {
  return Parser(text).image(on_magic, on_entry);
}

void write(std::string& out, const Value& v, bool pretty) {
  Writer w(out, pretty);
  write_value(w, v);
}

// Python's json.dump: ", " and ": " on one line; with indent=4, "," at the end of a line and
// each item on its own line, indented; an empty list or object stays "[]" / "{}".
void Writer::newline(size_t depth) {
  out_ += '\n';
  out_.append(depth * 4, ' ');
}

void Writer::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (stack_.empty()) return;
  if (stack_.back()++) out_ += pretty_ ? "," : ", ";
  if (pretty_) newline(stack_.size());
}

void Writer::open(char c) {
  before_value();
  out_ += c;
  stack_.push_back(0);
}

void Writer::close(char c) {
  if (pretty_ && stack_.back()) newline(stack_.size() - 1);
  out_ += c;
  stack_.pop_back();
}

void Writer::key(std::string_view k) {
  if (stack_.back()++) out_ += pretty_ ? "," : ", ";
  if (pretty_) newline(stack_.size());
  write_string(out_, k);
  out_ += ": ";
  after_key_ = true;
}

void Writer::string(std::string_view s) {
  before_value();
  write_string(out_, s);
}

void Writer::number(std::string_view digits) {
  before_value();
  out_ += digits;
}

void Writer::boolean(bool b) {
  before_value();
  out_ += b ? "true" : "false";
}

void Writer::null() {
  before_value();
  out_ += "null";
}

}  // namespace cryo::imgtool::json
