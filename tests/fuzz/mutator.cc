#include "mutator.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "schema.h"

namespace cryo::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr uint64_t kPage = 4096;

std::string hex_bytes(std::string_view s, size_t max = 16) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; i++)
    out += fmt::format("{}{:02x}", i ? " " : "", static_cast<uint8_t>(s[i]));
  if (s.size() > max) out += " ...";
  return out;
}

// A field of a decoded entry: `index` is the element of a repeated field, or -1 for a
// singular field or a repeated field as a whole.
struct FieldRef {
  Message* msg;
  const FieldDescriptor* field;
  int index;
  std::string path;  // "tc.task_state", "vmas[].start": no element numbers (signatures)
};

void collect(Message* m, const std::string& prefix, std::vector<FieldRef>& out) {
  const auto* d = m->GetDescriptor();
  const Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    std::string path = prefix + f->name();
    if (f->is_repeated()) {
      out.push_back({m, f, -1, path + "[]"});
      int n = r->FieldSize(*m, f);
      for (int k = 0; k < n; k++) {
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE)
          collect(r->MutableRepeatedMessage(m, f, k), path + "[].", out);
        else
          out.push_back({m, f, k, path + "[]"});
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (r->HasField(*m, f)) collect(r->MutableMessage(m, f), path + ".", out);
    } else {
      out.push_back({m, f, -1, path});
    }
  }
}

// Reads and writes a scalar field through reflection as a uint64 (signed values sign-extended).
uint64_t get_int(const FieldRef& f) {
  const Reflection* r = f.msg->GetReflection();
  const bool rep = f.index >= 0;
  switch (f.field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return static_cast<uint64_t>(static_cast<int64_t>(
          rep ? r->GetRepeatedInt32(*f.msg, f.field, f.index) : r->GetInt32(*f.msg, f.field)));
    case FieldDescriptor::CPPTYPE_INT64:
      return static_cast<uint64_t>(rep ? r->GetRepeatedInt64(*f.msg, f.field, f.index)
                                       : r->GetInt64(*f.msg, f.field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(*f.msg, f.field, f.index) : r->GetUInt32(*f.msg, f.field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(*f.msg, f.field, f.index) : r->GetUInt64(*f.msg, f.field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(*f.msg, f.field, f.index) : r->GetBool(*f.msg, f.field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return static_cast<uint64_t>(
          static_cast<int64_t>(rep ? r->GetRepeatedEnumValue(*f.msg, f.field, f.index)
                                   : r->GetEnumValue(*f.msg, f.field)));
    default:
      return 0;
  }
}

void set_int(const FieldRef& f, uint64_t v) {
  const Reflection* r = f.msg->GetReflection();
  const bool rep = f.index >= 0;
  switch (f.field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      rep ? r->SetRepeatedInt32(f.msg, f.field, f.index, static_cast<int32_t>(v))
          : r->SetInt32(f.msg, f.field, static_cast<int32_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      rep ? r->SetRepeatedInt64(f.msg, f.field, f.index, static_cast<int64_t>(v))
          : r->SetInt64(f.msg, f.field, static_cast<int64_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      rep ? r->SetRepeatedUInt32(f.msg, f.field, f.index, static_cast<uint32_t>(v))
          : r->SetUInt32(f.msg, f.field, static_cast<uint32_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      rep ? r->SetRepeatedUInt64(f.msg, f.field, f.index, v) : r->SetUInt64(f.msg, f.field, v);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      rep ? r->SetRepeatedBool(f.msg, f.field, f.index, v != 0)
          : r->SetBool(f.msg, f.field, v != 0);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      rep ? r->SetRepeatedEnumValue(f.msg, f.field, f.index, static_cast<int>(v))
          : r->SetEnumValue(f.msg, f.field, static_cast<int>(v));
      break;
    default:
      break;
  }
}

std::string get_string(const FieldRef& f) {
  const Reflection* r = f.msg->GetReflection();
  return f.index >= 0 ? r->GetRepeatedString(*f.msg, f.field, f.index)
                      : r->GetString(*f.msg, f.field);
}

void set_string(const FieldRef& f, std::string v) {
  const Reflection* r = f.msg->GetReflection();
  f.index >= 0 ? r->SetRepeatedString(f.msg, f.field, f.index, std::move(v))
               : r->SetString(f.msg, f.field, std::move(v));
}

bool is_int(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_BOOL:
    case FieldDescriptor::CPPTYPE_ENUM:
      return true;
    default:
      return false;
  }
}

std::string show(const FieldRef& f) {
  switch (f.field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_ENUM:
      return fmt::format("{}", static_cast<int64_t>(get_int(f)));
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_BOOL:
      return fmt::format("{}", get_int(f));
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = get_string(f);
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return fmt::format("{:?}", s);
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      const Reflection* r = f.msg->GetReflection();
      double v = f.field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE
                     ? (f.index >= 0 ? r->GetRepeatedDouble(*f.msg, f.field, f.index)
                                     : r->GetDouble(*f.msg, f.field))
                     : (f.index >= 0 ? r->GetRepeatedFloat(*f.msg, f.field, f.index)
                                     : r->GetFloat(*f.msg, f.field));
      return fmt::format("{}", v);
    }
    default:
      return "?";
  }
}

// Values at the edges of a field's type, and next to its current value `v`.
uint64_t boundary(Rng& rng, const FieldDescriptor* f, uint64_t v) {
  const uint64_t near[] = {v + 1, v - 1, v + kPage, v - kPage, v ^ (1ULL << rng.below(64)), v * 2};
  if (rng.chance(1, 3)) return near[rng.below(std::size(near))];
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      static const int32_t vals[] = {0,
                                     1,
                                     -1,
                                     2,
                                     0x7f,
                                     0x80,
                                     0xff,
                                     0x7fff,
                                     4096,
                                     std::numeric_limits<int32_t>::min(),
                                     std::numeric_limits<int32_t>::max()};
      return static_cast<uint64_t>(static_cast<int64_t>(vals[rng.below(std::size(vals))]));
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      static const uint32_t vals[] = {0,     1,          2,          0x7f,       0x80,
                                      0xff,  0x100,      0xffff,     0x10000,    4096,
                                      0xfff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
      return vals[rng.below(std::size(vals))];
    }
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64: {
      static const uint64_t vals[] = {0,
                                      1,
                                      2,
                                      0xff,
                                      kPage,
                                      0x7fffffff,
                                      0x80000000,
                                      0xffffffff,
                                      0x100000000,
                                      (1ULL << 47) - kPage,
                                      1ULL << 47,
                                      0x7fffffffffffffff,
                                      0x8000000000000000,
                                      0xfffffffffffff000,
                                      0xffffffffffffffff};
      return vals[rng.below(std::size(vals))];
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      return !v;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      if (rng.chance(2, 3) && e->value_count())
        return static_cast<uint64_t>(static_cast<int64_t>(
            e->value(static_cast<int>(rng.below(e->value_count())))->number()));
      static const int32_t vals[] = {-1, 0, 1000, std::numeric_limits<int32_t>::max()};
      return static_cast<uint64_t>(static_cast<int64_t>(vals[rng.below(std::size(vals))]));
    }
    default:
      return v;
  }
}

std::string mangle_string(Rng& rng, const std::string& s) {
  switch (rng.below(9)) {
    case 0:
      return "";
    case 1:
      return s.substr(0, s.size() / 2);
    case 2:
      return s + s;
    case 3: {
      std::string t = s;
      if (!t.empty()) t[rng.below(t.size())] ^= static_cast<char>(1u << rng.below(8));
      return t;
    }
    case 4:
      return std::string(4097, 'A');
    case 5: {
      std::string t = s;
      t.insert(rng.below(t.size() + 1), 1, '\0');
      return t;
    }
    case 6:
      return "/";
    case 7:
      return "/nonexistent/cryo-fuzz";
    default:
      return s + std::string(1, static_cast<char>(rng.below(256)));
  }
}

// ------------------------------------------------------------------ wire format

struct WireField {
  size_t start;     // of the tag
  size_t value;     // of the value (after the tag; for length-delimited, of the length)
  size_t end;       // past the field
  uint64_t number;  // field number
  int type;         // wire type
};

bool read_varint(std::string_view s, size_t& at, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && at < s.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(s[at++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out += static_cast<char>(b);
  } while (v);
  return out;
}

// The top-level fields of a message's encoding, as far as it is well formed.
std::vector<WireField> wire_fields(std::string_view s) {
  std::vector<WireField> out;
  size_t at = 0;
  while (at < s.size()) {
    WireField f{};
    f.start = at;
    uint64_t tag;
    if (!read_varint(s, at, tag)) break;
    f.number = tag >> 3;
    f.type = static_cast<int>(tag & 7);
    f.value = at;
    uint64_t n;
    switch (f.type) {
      case 0:
        if (!read_varint(s, at, n)) return out;
        break;
      case 1:
        at += 8;
        break;
      case 2:
        if (!read_varint(s, at, n) || n > s.size() - at) return out;
        at += n;
        break;
      case 5:
        at += 4;
        break;
      default:
        return out;
    }
    if (at > s.size()) break;
    f.end = at;
    out.push_back(f);
  }
  return out;
}

// ------------------------------------------------------------------ the mutator

class Mutator {
 public:
  Mutator(ImageSet& set, Rng& rng) : set_(set), rng_(rng) {}

  Mutation one() {
    using Op = std::optional<Mutation> (Mutator::*)();
    struct Choice {
      Op op;
      int weight;
    };
    static const Choice choices[] = {
        {&Mutator::bit_flip, 10},    {&Mutator::byte_set, 8},     {&Mutator::u32_set, 8},
        {&Mutator::truncate, 5},     {&Mutator::extend, 4},       {&Mutator::insert, 3},
        {&Mutator::erase, 3},        {&Mutator::delete_file, 1},  {&Mutator::empty_file, 1},
        {&Mutator::entry_length, 5}, {&Mutator::dup_entry, 4},    {&Mutator::remove_entry, 4},
        {&Mutator::swap_entries, 3}, {&Mutator::entry_across, 3}, {&Mutator::replace_file, 2},
        {&Mutator::field_set, 24},   {&Mutator::field_copy, 12},  {&Mutator::field_clear, 4},
        {&Mutator::repeated_op, 6},  {&Mutator::wire_tamper, 10},
    };
    int total = 0;
    for (const Choice& c : choices) total += c.weight;
    for (int attempt = 0; attempt < 1000; attempt++) {
      int x = static_cast<int>(rng_.below(static_cast<uint64_t>(total)));
      for (const Choice& c : choices) {
        if (x < c.weight) {
          if (auto m = (this->*c.op)()) return *m;
          break;
        }
        x -= c.weight;
      }
    }
    return {"none", "no mutation applied"};
  }

 private:
  // ---- choosing files and entries

  // A file to mutate: raw page images are chosen less often (their content is only memory).
  ImageFile* any_file() {
    std::vector<ImageFile*> v;
    for (ImageFile& f : set_.files) {
      const ImageKind* k = kind_of(f.name);
      int w = k && k->magic == 0 ? 1 : 6;
      for (int i = 0; i < w; i++) v.push_back(&f);
    }
    return v.empty() ? nullptr : rng_.pick(v);
  }

  // A file held in memory whose entries split, with at least `min` of them.
  struct Split {
    ImageFile* file;
    const ImageKind* kind;
    Layout layout;
  };
  std::optional<Split> structured(size_t min = 1) {
    std::vector<Split> v;
    for (ImageFile& f : set_.files) {
      const ImageKind* k = kind_of(f.name);
      if (!k || k->magic == 0 || !f.data) continue;
      Layout l = split(*k, *f.data);
      if (l.entries.size() >= min) v.push_back({&f, k, std::move(l)});
    }
    if (v.empty()) return std::nullopt;
    return v[rng_.below(v.size())];
  }

  static std::string blob(const std::string& d, const Span& s) {
    return d.substr(s.off, s.end() - s.off);
  }
  // The file rebuilt from its header, `entries` (each a whole length + message + raw blob) and
  // its unsplit tail.
  static void rebuild(ImageFile& f, const Layout& l, const std::vector<std::string>& entries) {
    std::string out = f.data->substr(0, l.header);
    for (const auto& e : entries) out += e;
    out += f.data->substr(std::min(l.tail, f.data->size()));
    f.data = std::move(out);
    f.changed = true;
  }
  static std::vector<std::string> blobs(const ImageFile& f, const Layout& l) {
    std::vector<std::string> v;
    for (const Span& s : l.entries) v.push_back(blob(*f.data, s));
    return v;
  }
  static std::string framed(const std::string& msg, std::string_view raw) {
    uint32_t len = static_cast<uint32_t>(msg.size());
    std::string out(reinterpret_cast<const char*>(&len), 4);
    return out + msg + std::string(raw);
  }

  std::string sig(const char* op, const ImageFile& f, const std::string& what = "") {
    std::string s = fmt::format("{}:{}", op, pattern_of(f.name));
    if (!what.empty()) s += ":" + what;
    return s;
  }

  // ---- bytes

  // An offset to mutate: in the header, a length prefix, or anywhere.
  uint64_t offset_in(const ImageFile& f) {
    const uint64_t size = f.current_size();
    if (f.data && rng_.chance(1, 3)) {
      if (const ImageKind* k = kind_of(f.name); k && k->magic) {
        Layout l = split(*k, *f.data);
        if (!l.entries.empty()) return l.entries[rng_.below(l.entries.size())].off;
      }
    }
    return rng_.below(size);
  }

  void put_bytes(ImageFile& f, uint64_t off, const std::string& bytes) {
    f.changed = true;
    if (f.data) {
      if (off + bytes.size() > f.data->size()) f.data->resize(off + bytes.size());
      f.data->replace(off, bytes.size(), bytes);
    } else {
      f.patches.emplace_back(off, bytes);
    }
  }

  std::optional<Mutation> bit_flip() {
    ImageFile* f = any_file();
    if (!f || f->current_size() == 0 || !f->data) return bit_flip_big(f);
    uint64_t off = offset_in(*f);
    int bit = static_cast<int>(rng_.below(8));
    (*f->data)[off] ^= static_cast<char>(1u << bit);
    f->changed = true;
    return Mutation{sig("bit-flip", *f), fmt::format("{} byte {} bit {}", f->name, off, bit)};
  }
  std::optional<Mutation> bit_flip_big(ImageFile* f) {
    if (!f || f->data || f->current_size() == 0) return std::nullopt;
    uint64_t off = rng_.below(f->current_size());
    put_bytes(*f, off, std::string(1, static_cast<char>(rng_.below(256))));
    return Mutation{sig("byte-set", *f), fmt::format("{} byte {} randomized", f->name, off)};
  }

  std::optional<Mutation> byte_set() {
    static const uint8_t vals[] = {0, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x40, 0x20};
    ImageFile* f = any_file();
    if (!f || f->current_size() == 0) return std::nullopt;
    uint64_t off = offset_in(*f);
    uint8_t v = vals[rng_.below(std::size(vals))];
    put_bytes(*f, off, std::string(1, static_cast<char>(v)));
    return Mutation{sig("byte-set", *f), fmt::format("{} byte {} = {:#x}", f->name, off, v)};
  }

  std::optional<Mutation> u32_set() {
    ImageFile* f = any_file();
    if (!f || f->current_size() < 4) return std::nullopt;
    uint64_t off = std::min(offset_in(*f), f->current_size() - 4);
    const uint32_t size = static_cast<uint32_t>(f->current_size());
    const uint32_t rest = static_cast<uint32_t>(f->current_size() - off - 4);
    const uint32_t vals[] = {0,      1,          0x7f,       0x80,       0xff,
                             0xffff, 0x7fffffff, 0x80000000, 0xffffffff, size,
                             rest,   rest + 1,   rest - 1,   4096,       size * 2u};
    uint32_t v = vals[rng_.below(std::size(vals))];
    put_bytes(*f, off, std::string(reinterpret_cast<const char*>(&v), 4));
    return Mutation{sig("u32-set", *f), fmt::format("{} u32 at {} = {:#x}", f->name, off, v)};
  }

  std::optional<Mutation> truncate() {
    ImageFile* f = any_file();
    if (!f || f->current_size() == 0) return std::nullopt;
    const uint64_t size = f->current_size();
    uint64_t to;
    switch (rng_.below(4)) {
      case 0:
        to = size - 1;
        break;
      case 1:
        to = size > kPage ? size - kPage : 0;
        break;
      case 2:
        to = size / 2;
        break;
      default:
        to = rng_.below(size);
    }
    if (f->data) {
      f->data->resize(to);
    } else {
      f->resize = to;
    }
    f->changed = true;
    return Mutation{sig("truncate", *f),
                    fmt::format("{} truncated from {} to {}", f->name, size, to)};
  }

  std::optional<Mutation> extend() {
    ImageFile* f = any_file();
    if (!f) return std::nullopt;
    const uint64_t size = f->current_size();
    uint64_t n = rng_.chance(1, 2) ? 1 + rng_.below(8) : (rng_.chance(1, 2) ? kPage : 4);
    if (!f->data) {
      f->resize = size + n;
      f->changed = true;
      return Mutation{sig("extend", *f), fmt::format("{} extended by {} zero bytes", f->name, n)};
    }
    const char fill = rng_.chance(1, 2) ? '\0' : static_cast<char>(rng_.below(256));
    f->data->append(n, fill);
    f->changed = true;
    return Mutation{sig("extend", *f), fmt::format("{} extended by {} bytes of {:#x}", f->name, n,
                                                   static_cast<uint8_t>(fill))};
  }

  std::optional<Mutation> insert() {
    ImageFile* f = any_file();
    if (!f || !f->data) return std::nullopt;
    uint64_t off = rng_.below(f->data->size() + 1);
    std::string bytes;
    for (uint64_t i = 0, n = 1 + rng_.below(8); i < n; i++)
      bytes += static_cast<char>(rng_.below(256));
    f->data->insert(off, bytes);
    f->changed = true;
    return Mutation{sig("insert", *f), fmt::format("{} {} bytes inserted at {}: {}", f->name,
                                                   bytes.size(), off, hex_bytes(bytes))};
  }

  std::optional<Mutation> erase() {
    ImageFile* f = any_file();
    if (!f || !f->data || f->data->empty()) return std::nullopt;
    uint64_t off = rng_.below(f->data->size());
    uint64_t n = std::min<uint64_t>(1 + rng_.below(8), f->data->size() - off);
    f->data->erase(off, n);
    f->changed = true;
    return Mutation{sig("erase", *f), fmt::format("{} {} bytes erased at {}", f->name, n, off)};
  }

  std::optional<Mutation> delete_file() {
    ImageFile* f = any_file();
    if (!f) return std::nullopt;
    Mutation m{sig("delete-file", *f), fmt::format("{} deleted", f->name)};
    set_.files.erase(set_.files.begin() + (f - set_.files.data()));
    return m;
  }

  std::optional<Mutation> empty_file() {
    ImageFile* f = any_file();
    if (!f) return std::nullopt;
    f->data = std::string();
    f->patches.clear();
    f->resize.reset();
    f->changed = true;
    return Mutation{sig("empty-file", *f), fmt::format("{} emptied", f->name)};
  }

  // ---- entries

  std::optional<Mutation> entry_length() {
    auto s = structured();
    if (!s) return std::nullopt;
    size_t i = rng_.below(s->layout.entries.size());
    const Span& e = s->layout.entries[i];
    const uint32_t vals[] = {0,
                             e.len - 1,
                             e.len + 1,
                             e.len + 4,
                             0x7fffffff,
                             0x80000000,
                             0xffffffff,
                             static_cast<uint32_t>(s->file->data->size() - e.off - 4),
                             static_cast<uint32_t>(s->file->data->size() - e.off - 3)};
    uint32_t v = vals[rng_.below(std::size(vals))];
    std::memcpy(s->file->data->data() + e.off, &v, 4);
    s->file->changed = true;
    return Mutation{sig("entry-length", *s->file),
                    fmt::format("{} entry {} length {} -> {:#x}", s->file->name, i, e.len, v)};
  }

  std::optional<Mutation> dup_entry() {
    auto s = structured();
    if (!s) return std::nullopt;
    auto v = blobs(*s->file, s->layout);
    size_t i = rng_.below(v.size());
    size_t times = rng_.chance(1, 4) ? 1 + rng_.below(64) : 1;
    size_t at = rng_.chance(1, 2) ? i + 1 : v.size();
    v.insert(v.begin() + static_cast<long>(at), times, v[i]);
    rebuild(*s->file, s->layout, v);
    return Mutation{
        sig("dup-entry", *s->file),
        fmt::format("{} entry {} duplicated {} time(s) at {}", s->file->name, i, times, at)};
  }

  std::optional<Mutation> remove_entry() {
    auto s = structured();
    if (!s) return std::nullopt;
    auto v = blobs(*s->file, s->layout);
    size_t i = rng_.below(v.size());
    v.erase(v.begin() + static_cast<long>(i));
    rebuild(*s->file, s->layout, v);
    return Mutation{sig("remove-entry", *s->file),
                    fmt::format("{} entry {} of {} removed", s->file->name, i, v.size() + 1)};
  }

  std::optional<Mutation> swap_entries() {
    auto s = structured(2);
    if (!s) return std::nullopt;
    auto v = blobs(*s->file, s->layout);
    size_t i = rng_.below(v.size()), j = rng_.below(v.size());
    if (i == j) j = (i + 1) % v.size();
    std::swap(v[i], v[j]);
    rebuild(*s->file, s->layout, v);
    return Mutation{sig("swap-entries", *s->file),
                    fmt::format("{} entries {} and {} swapped", s->file->name, i, j)};
  }

  // An entry of another file inserted into one, or put in place of one of its entries.
  std::optional<Mutation> entry_across() {
    auto to = structured();
    auto from = structured();
    if (!to || !from || to->file == from->file) return std::nullopt;
    size_t k = rng_.below(from->layout.entries.size());
    std::string e = blob(*from->file->data, from->layout.entries[k]);
    auto v = blobs(*to->file, to->layout);
    size_t at = rng_.below(v.size() + 1);
    bool replace = at < v.size() && rng_.chance(1, 2);
    if (replace)
      v[at] = e;
    else
      v.insert(v.begin() + static_cast<long>(at), e);
    rebuild(*to->file, to->layout, v);
    return Mutation{fmt::format("entry-across:{}<-{}", pattern_of(to->file->name),
                                pattern_of(from->file->name)),
                    fmt::format("{} entry {} {} by entry {} of {}", to->file->name, at,
                                replace ? "replaced" : "inserted", k, from->file->name)};
  }

  // A whole file replaced by another of the set, preferably one of the same kind (the core of
  // another task, say).
  std::optional<Mutation> replace_file() {
    ImageFile* to = any_file();
    if (!to) return std::nullopt;
    std::vector<const ImageFile*> same, other;
    for (const ImageFile& f : set_.files) {
      if (&f == to || !f.data) continue;
      (pattern_of(f.name) == pattern_of(to->name) ? same : other).push_back(&f);
    }
    const auto& pool = !same.empty() && rng_.chance(3, 4) ? same : other;
    if (pool.empty()) return std::nullopt;
    const ImageFile* from = rng_.pick(pool);
    to->data = *from->data;
    to->patches.clear();
    to->resize.reset();
    to->changed = true;
    return Mutation{
        fmt::format("replace-file:{}<-{}", pattern_of(to->name), pattern_of(from->name)),
        fmt::format("{} replaced by a copy of {}", to->name, from->name)};
  }

  // ---- fields

  struct Decoded {
    Split s;
    size_t index;
    std::unique_ptr<Message> msg;
    std::vector<FieldRef> fields;
  };
  std::optional<Decoded> decoded() {
    auto s = structured();
    if (!s) return std::nullopt;
    size_t i = rng_.below(s->layout.entries.size());
    const Span& e = s->layout.entries[i];
    auto msg = new_entry(*s->kind, i);
    if (!msg->ParsePartialFromArray(s->file->data->data() + e.off + 4, static_cast<int>(e.len)))
      return std::nullopt;
    Decoded d{std::move(*s), i, std::move(msg), {}};
    collect(d.msg.get(), "", d.fields);
    return d;
  }
  // Puts the entry's message back, its raw bytes unchanged.
  static void store(Decoded& d) {
    std::string body;
    d.msg->SerializePartialToString(&body);
    auto v = blobs(*d.s.file, d.s.layout);
    const Span& e = d.s.layout.entries[d.index];
    v[d.index] = framed(body, std::string_view(*d.s.file->data).substr(e.off + 4 + e.len, e.raw));
    rebuild(*d.s.file, d.s.layout, v);
  }
  std::string where(const Decoded& d) {
    return fmt::format("{} entry {}", d.s.file->name, d.index);
  }

  std::optional<Mutation> field_set() {
    auto d = decoded();
    if (!d) return std::nullopt;
    std::vector<FieldRef> scalars;
    for (const auto& f : d->fields)
      if (f.index >= 0 || !f.field->is_repeated()) scalars.push_back(f);
    if (scalars.empty()) return std::nullopt;
    const FieldRef& f = rng_.pick(scalars);
    const std::string before = show(f);
    const Reflection* r = f.msg->GetReflection();
    switch (f.field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        set_string(f, mangle_string(rng_, get_string(f)));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        static const double vals[] = {0, -1, 1e300, std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::infinity()};
        double v = vals[rng_.below(std::size(vals))];
        if (f.field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE)
          f.index >= 0 ? r->SetRepeatedDouble(f.msg, f.field, f.index, v)
                       : r->SetDouble(f.msg, f.field, v);
        else
          f.index >= 0 ? r->SetRepeatedFloat(f.msg, f.field, f.index, static_cast<float>(v))
                       : r->SetFloat(f.msg, f.field, static_cast<float>(v));
        break;
      }
      default:
        set_int(f, boundary(rng_, f.field, get_int(f)));
    }
    const std::string after = show(f);
    store(*d);
    return Mutation{sig("field-set", *d->s.file, f.path),
                    fmt::format("{}: {} {} -> {}", where(*d), f.path, before, after)};
  }

  // The value the same field has in another entry of the same type (anywhere in the set).
  std::optional<Mutation> field_copy() {
    auto d = decoded();
    if (!d) return std::nullopt;
    std::vector<FieldRef> scalars;
    for (const auto& f : d->fields)
      if (f.index >= 0 || !f.field->is_repeated()) scalars.push_back(f);
    if (scalars.empty()) return std::nullopt;
    const FieldRef& f = rng_.pick(scalars);
    // Other values of this field in entries of the same message type.
    struct Value {
      std::string text;
      uint64_t num;
      std::string str;
      std::string from;
    };
    std::vector<Value> values;
    const std::string before = show(f);
    for (const ImageFile& file : set_.files) {
      const ImageKind* k = kind_of(file.name);
      if (!k || !k->magic || !file.data) continue;
      Layout l = split(*k, *file.data);
      for (size_t i = 0; i < l.entries.size(); i++) {
        auto m = new_entry(*k, i);
        if (m->GetDescriptor() != d->msg->GetDescriptor() ||
            !m->ParsePartialFromArray(file.data->data() + l.entries[i].off + 4,
                                      static_cast<int>(l.entries[i].len)))
          continue;
        std::vector<FieldRef> refs;
        collect(m.get(), "", refs);
        for (const FieldRef& o : refs) {
          if (o.path != f.path || (o.index < 0 && o.field->is_repeated())) continue;
          if (o.field->cpp_type() != f.field->cpp_type()) continue;
          std::string text = show(o);
          if (text == before) continue;
          Value v{text, is_int(o.field) ? get_int(o) : 0,
                  o.field->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? get_string(o) : "",
                  fmt::format("{} entry {}", file.name, i)};
          values.push_back(std::move(v));
        }
      }
    }
    if (values.empty()) return std::nullopt;
    const Value& v = rng_.pick(values);
    if (f.field->cpp_type() == FieldDescriptor::CPPTYPE_STRING)
      set_string(f, v.str);
    else if (is_int(f.field))
      set_int(f, v.num);
    else
      return std::nullopt;
    store(*d);
    return Mutation{
        sig("field-copy", *d->s.file, f.path),
        fmt::format("{}: {} {} -> {} (from {})", where(*d), f.path, before, v.text, v.from)};
  }

  std::optional<Mutation> field_clear() {
    auto d = decoded();
    if (!d) return std::nullopt;
    std::vector<const FieldRef*> set;
    for (const auto& f : d->fields)
      if (f.index < 0 &&
          (f.field->is_repeated() ? f.msg->GetReflection()->FieldSize(*f.msg, f.field) > 0
                                  : f.msg->GetReflection()->HasField(*f.msg, f.field)))
        set.push_back(&f);
    // Submessages too: a whole part of the entry missing.
    std::vector<std::pair<Message*, const FieldDescriptor*>> subs;
    std::function<void(Message*)> walk = [&](Message* m) {
      const auto* desc = m->GetDescriptor();
      const Reflection* r = m->GetReflection();
      for (int i = 0; i < desc->field_count(); i++) {
        const FieldDescriptor* fd = desc->field(i);
        if (fd->is_repeated() || fd->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
            !r->HasField(*m, fd))
          continue;
        subs.emplace_back(m, fd);
        walk(r->MutableMessage(m, fd));
      }
    };
    walk(d->msg.get());
    if (!subs.empty() && (set.empty() || rng_.chance(1, 4))) {
      auto [m, fd] = subs[rng_.below(subs.size())];
      std::string name = fd->full_name();
      m->GetReflection()->ClearField(m, fd);
      store(*d);
      return Mutation{sig("field-clear", *d->s.file, name),
                      fmt::format("{}: submessage {} cleared", where(*d), name)};
    }
    if (set.empty()) return std::nullopt;
    const FieldRef& f = *set[rng_.below(set.size())];
    f.msg->GetReflection()->ClearField(f.msg, f.field);
    store(*d);
    return Mutation{sig("field-clear", *d->s.file, f.path),
                    fmt::format("{}: {} cleared", where(*d), f.path)};
  }

  std::optional<Mutation> repeated_op() {
    auto d = decoded();
    if (!d) return std::nullopt;
    std::vector<const FieldRef*> reps;
    for (const auto& f : d->fields)
      if (f.index < 0 && f.field->is_repeated() &&
          f.msg->GetReflection()->FieldSize(*f.msg, f.field) > 0)
        reps.push_back(&f);
    if (reps.empty()) return std::nullopt;
    const FieldRef& f = *reps[rng_.below(reps.size())];
    const Reflection* r = f.msg->GetReflection();
    const int n = r->FieldSize(*f.msg, f.field);
    const int i = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
    std::string what;
    switch (rng_.below(4)) {
      case 0: {  // duplicate element i (once, or many times), at the end
        int times = rng_.chance(1, 4) ? 1 + static_cast<int>(rng_.below(200)) : 1;
        for (int t = 0; t < times; t++) {
          if (f.field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            r->AddMessage(f.msg, f.field)->CopyFrom(r->GetRepeatedMessage(*f.msg, f.field, i));
          } else if (f.field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
            r->AddString(f.msg, f.field, r->GetRepeatedString(*f.msg, f.field, i));
          } else {
            FieldRef src{f.msg, f.field, i, f.path};
            uint64_t v = get_int(src);
            FieldRef added{f.msg, f.field, r->FieldSize(*f.msg, f.field), f.path};
            switch (f.field->cpp_type()) {
              case FieldDescriptor::CPPTYPE_INT32:
                r->AddInt32(f.msg, f.field, 0);
                break;
              case FieldDescriptor::CPPTYPE_INT64:
                r->AddInt64(f.msg, f.field, 0);
                break;
              case FieldDescriptor::CPPTYPE_UINT32:
                r->AddUInt32(f.msg, f.field, 0);
                break;
              case FieldDescriptor::CPPTYPE_UINT64:
                r->AddUInt64(f.msg, f.field, 0);
                break;
              case FieldDescriptor::CPPTYPE_BOOL:
                r->AddBool(f.msg, f.field, false);
                break;
              case FieldDescriptor::CPPTYPE_ENUM:
                r->AddEnumValue(f.msg, f.field, 0);
                break;
              default:
                return std::nullopt;
            }
            set_int(added, v);
          }
        }
        what = fmt::format("element {} of {} duplicated {} time(s)", i, n, times);
        break;
      }
      case 1:  // remove element i
        for (int k = i; k + 1 < n; k++) r->SwapElements(f.msg, f.field, k, k + 1);
        r->RemoveLast(f.msg, f.field);
        what = fmt::format("element {} of {} removed", i, n);
        break;
      case 2: {  // swap two elements
        if (n < 2) return std::nullopt;
        int j = (i + 1 + static_cast<int>(rng_.below(static_cast<uint64_t>(n - 1)))) % n;
        r->SwapElements(f.msg, f.field, i, j);
        what = fmt::format("elements {} and {} of {} swapped", i, j, n);
        break;
      }
      default:
        r->ClearField(f.msg, f.field);
        what = fmt::format("all {} elements removed", n);
    }
    store(*d);
    return Mutation{sig("repeated", *d->s.file, f.path),
                    fmt::format("{}: {} {}", where(*d), f.path, what)};
  }

  // Changes to the encoding itself, in one entry; the entry's length follows (usually).
  std::optional<Mutation> wire_tamper() {
    auto s = structured();
    if (!s) return std::nullopt;
    size_t i = rng_.below(s->layout.entries.size());
    const Span& e = s->layout.entries[i];
    std::string body = s->file->data->substr(e.off + 4, e.len);
    auto fields = wire_fields(body);
    if (fields.empty()) return std::nullopt;
    const WireField& f = fields[rng_.below(fields.size())];
    std::string what, op;
    switch (rng_.below(6)) {
      case 0: {  // a varint value replaced
        if (f.type != 0) return std::nullopt;
        static const char* kinds[] = {"zero", "max64", "max32", "overlong", "unterminated"};
        int k = static_cast<int>(rng_.below(std::size(kinds)));
        std::string v;
        switch (k) {
          case 0:
            v = varint(0);
            break;
          case 1:
            v = varint(UINT64_MAX);
            break;
          case 2:
            v = varint(0xffffffff);
            break;
          case 3:
            v = std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
            break;
          default:
            v = std::string("\x80\x80\x80", 3);
        }
        body.replace(f.value, f.end - f.value, v);
        op = "wire-varint";
        what = fmt::format("field #{} varint made {}", f.number, kinds[k]);
        break;
      }
      case 1: {  // another wire type
        int type = static_cast<int>(rng_.below(8));
        if (type == f.type) type = (type + 1) % 8;
        body.replace(f.start, f.value - f.start, varint((f.number << 3) | type));
        op = "wire-type";
        what = fmt::format("field #{} wire type {} -> {}", f.number, f.type, type);
        break;
      }
      case 2: {  // an unknown (or cryo's own) field number
        static const uint64_t nums[] = {0, 99, 1000, 1001, (1u << 29) - 1};
        uint64_t num = nums[rng_.below(std::size(nums))];
        body.replace(f.start, f.value - f.start,
                     varint((num << 3) | static_cast<uint64_t>(f.type)));
        op = "wire-number";
        what = fmt::format("field #{} renumbered {}", f.number, num);
        break;
      }
      case 3: {  // a length-delimited field's length changed
        if (f.type != 2) return std::nullopt;
        size_t at = f.value;
        uint64_t n;
        read_varint(body, at, n);
        const uint64_t vals[] = {0, n + 1, n ? n - 1 : 1, 0x7fffffff, UINT64_MAX};
        uint64_t v = vals[rng_.below(std::size(vals))];
        body.replace(f.value, at - f.value, varint(v));
        op = "wire-length";
        what = fmt::format("field #{} length {} -> {}", f.number, n, v);
        break;
      }
      case 4:  // a field dropped
        body.erase(f.start, f.end - f.start);
        op = "wire-drop";
        what = fmt::format("field #{} dropped", f.number);
        break;
      default:  // a field repeated
        body.insert(f.end, body.substr(f.start, f.end - f.start));
        op = "wire-repeat";
        what = fmt::format("field #{} repeated", f.number);
    }
    auto v = blobs(*s->file, s->layout);
    v[i] = framed(body, std::string_view(*s->file->data).substr(e.off + 4 + e.len, e.raw));
    if (rng_.chance(1, 8)) {  // the old length kept
      std::memcpy(v[i].data(), &e.len, 4);
      what += ", old entry length kept";
    }
    rebuild(*s->file, s->layout, v);
    return Mutation{sig(op.c_str(), *s->file, fmt::format("#{}", f.number)),
                    fmt::format("{} entry {}: {}", s->file->name, i, what)};
  }

  ImageSet& set_;
  Rng& rng_;
};

}  // namespace

std::vector<Mutation> mutate(ImageSet& set, Rng& rng, int count) {
  Mutator m(set, rng);
  std::vector<Mutation> out;
  for (int i = 0; i < count; i++) out.push_back(m.one());
  return out;
}

}  // namespace cryo::fuzz
