// A small JSON tree, reader and writer for the image tool. The writer prints exactly what
// Python's json.dump prints (ensure_ascii, separators ", " / ": " on one line, indent 4 when
// pretty), so `cryo decode` matches `crit decode` byte for byte.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cryo::imgtool::json {

struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  // kNumber: the number as written (digits, sign, maybe a fraction or exponent);
  // kString: the text in UTF-8 (an escaped lone surrogate \udc80..\udcff stands for one
  // byte that is not UTF-8, see write()).
  std::string text;
  std::vector<Value> items;                            // kArray
  std::vector<std::pair<std::string, Value>> members;  // kObject, in order

  static Value null() { return Value{}; }
  static Value of_bool(bool b) {
    Value v;
    v.type = Type::kBool;
    v.boolean = b;
    return v;
  }
  static Value number(std::string digits) {
    Value v;
    v.type = Type::kNumber;
    v.text = std::move(digits);
    return v;
  }
  static Value string(std::string s) {
    Value v;
    v.type = Type::kString;
    v.text = std::move(s);
    return v;
  }
  static Value array() {
    Value v;
    v.type = Type::kArray;
    return v;
  }
  static Value object() {
    Value v;
    v.type = Type::kObject;
    return v;
  }

  bool is_string() const { return type == Type::kString; }
  // An object's member (the last one of that name, as Python's json keeps it), or null.
  const Value* find(std::string_view key) const;
  Value& add(std::string key, Value v) {
    members.emplace_back(std::move(key), std::move(v));
    return members.back().second;
  }
  // What Python's truth test says of the value (bool(x)).
  bool truthy() const;
  // "object", "list", ... as Python would name the type (for error messages).
  const char* kind() const;
};

// Writes JSON as it goes (no tree), laid out exactly as write() lays out a Value. In an
// object, key() comes before each value.
class Writer {
 public:
  Writer(std::string& out, bool pretty) : out_(out), pretty_(pretty) {}
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(std::string_view k);
  void string(std::string_view s);
  void number(std::string_view digits);
  void boolean(bool b);
  void null();

 private:
  void open(char c);
  void close(char c);
  void before_value();
  void newline(size_t depth);

  std::string& out_;
  bool pretty_;
  bool after_key_ = false;
  std::vector<size_t> stack_;  // per open list or object: the items written so far
};

// Parses one JSON text (surrounding white space allowed). Throws cryo::Error naming the line
// and column of the first fault.
Value parse(std::string_view text);

// Reads an image's JSON laid out as crit writes it, {"magic": M, "entries": [E, ...], ...}
// (more members allowed after them, but not another "magic" or "entries"), calling on_magic(M)
// and then on_entry(E) for each entry as it is read, so that no tree of the whole document is
// built. Returns false, having maybe called them for a part, when the text is not laid out so
// (the caller then parses the whole with parse()). Throws for invalid JSON.
bool parse_image(std::string_view text, const std::function<void(const Value&)>& on_magic,
                 const std::function<void(const Value&)>& on_entry);

// Appends v as Python's json.dump(v, indent=4 if pretty else None) writes it.
void write(std::string& out, const Value& v, bool pretty);

}  // namespace cryo::imgtool::json
