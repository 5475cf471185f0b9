#include "imgtool/codec.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <memory>
#include <optional>

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include "base/error.h"
#include "cgroup.pb.h"
#include "core.pb.h"
#include "eventfd.pb.h"
#include "eventpoll.pb.h"
#include "ext-file.pb.h"
#include "fdinfo.pb.h"
#include "fifo.pb.h"
#include "file-lock.pb.h"
#include "fs.pb.h"
#include "fsnotify.pb.h"
#include "ghost-file.pb.h"
#include "image/image.h"
#include "image/mounts.h"
#include "inventory.pb.h"
#include "ipc-shm.pb.h"
#include "ipc-var.pb.h"
#include "memfd.pb.h"
#include "mm.pb.h"
#include "mnt.pb.h"
#include "ns.pb.h"
#include "opts.pb.h"
#include "packet-sock.pb.h"
#include "pagemap.pb.h"
#include "pipe-data.pb.h"
#include "pipe.pb.h"
#include "pstree.pb.h"
#include "regfile.pb.h"
#include "remap-file-path.pb.h"
#include "rlimit.pb.h"
#include "sa.pb.h"
#include "seccomp.pb.h"
#include "signalfd.pb.h"
#include "sk-inet.pb.h"
#include "sk-netlink.pb.h"
#include "sk-packet.pb.h"
#include "sk-unix.pb.h"
#include "stats.pb.h"
#include "tcp-stream.pb.h"
#include "timens.pb.h"
#include "timer.pb.h"
#include "timerfd.pb.h"
#include "tty.pb.h"
#include "utsns.pb.h"
#include "vma.pb.h"

namespace cryo::imgtool {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;
using Int = __int128;

namespace {

template <typename T>
const pb::Descriptor* d() {
  return T::descriptor();
}

// The image kinds: crit's magic names and numbers (CRIU's magic.h) for every kind whose
// message cryo's schema has. The rest of crit's kinds (namespaces, mounts, netlink, ...) are
// not images cryo writes or reads.
const Kind kKinds[] = {
    {"INVENTORY", image::magic::kInventory, d<inventory_entry>},
    {"PSTREE", image::magic::kPstree, d<pstree_entry>},
    {"CORE", image::magic::kCore, d<core_entry>},
    {"IDS", image::magic::kIds, d<task_kobj_ids_entry>},
    {"CREDS", 0x54023547, d<creds_entry>},
    {"MM", image::magic::kMm, d<mm_entry>},
    {"VMAS", 0x54123737, d<vma_entry>},
    {"PAGEMAP", image::magic::kPagemap, d<pagemap_head>, d<pagemap_entry>},
    {"FS", image::magic::kFs, d<fs_entry>},
    {"FILES", image::magic::kFiles, d<file_entry>},
    {"FDINFO", image::magic::kFdinfo, d<fdinfo_entry>},
    {"REG_FILES", 0x50363636, d<reg_file_entry>},
    {"EXT_FILES", 0x59255641, d<ext_file_entry>},
    {"PIPES", 0x56513555, d<pipe_entry>},
    {"FIFO", 0x58364939, d<fifo_entry>},
    {"PIPES_DATA", image::magic::kPipesData, d<pipe_data_entry>, nullptr, "bytes"},
    {"FIFO_DATA", image::magic::kFifoData, d<pipe_data_entry>, nullptr, "bytes"},
    {"UNIXSK", 0x54373943, d<unix_sk_entry>},
    {"INETSK", 0x56443851, d<inet_sk_entry>},
    {"PACKETSK", 0x60454618, d<packet_sock_entry>},
    {"NETLINK_SK", 0x58005614, d<netlink_sk_entry>},
    {"SK_QUEUES", image::magic::kSkQueues, d<sk_packet_entry>, nullptr, "length"},
    {"EVENTFD_FILE", 0x44523722, d<eventfd_file_entry>},
    {"EVENTPOLL_FILE", 0x45023858, d<eventpoll_file_entry>},
    {"EVENTPOLL_TFD", 0x44433746, d<eventpoll_tfd_entry>},
    {"SIGNALFD", 0x57323820, d<signalfd_entry>},
    {"TIMERFD", 0x50493712, d<timerfd_entry>},
    {"INOTIFY_FILE", 0x48424431, d<inotify_file_entry>},
    {"INOTIFY_WD", 0x54562009, d<inotify_wd_entry>},
    {"FANOTIFY_FILE", 0x55096122, d<fanotify_file_entry>},
    {"FANOTIFY_MARK", 0x56506035, d<fanotify_mark_entry>},
    {"MEMFD_INODE", image::magic::kMemfdInode, d<memfd_inode_entry>},
    {"IPCNS_SHM", image::magic::kIpcnsShm, d<ipc_shm_entry>, nullptr, "size", false, 4},
    {"IPC_VAR", image::magic::kIpcVar, d<ipc_var_entry>},
    {"NS_FILES", 0x61394011, d<ns_file_entry>},
    {"GHOST_FILE", image::magic::kGhostFile, d<ghost_file_entry>, d<ghost_chunk_entry>, "len",
     true},
    {"REMAP_FPATH", image::magic::kRemapFpath, d<remap_file_path_entry>},
    {"FILE_LOCKS", image::magic::kFileLocks, d<file_lock_entry>},
    {"TTY_FILES", 0x59433025, d<tty_file_entry>},
    {"TTY_INFO", image::magic::kTtyInfo, d<tty_info_entry>},
    {"TTY_DATA", image::magic::kTtyData, d<tty_data_entry>},
    {"SIGACT", 0x55344201, d<sa_entry>},
    {"ITIMERS", 0x57464056, d<itimer_entry>},
    {"POSIX_TIMERS", 0x52603957, d<posix_timer_entry>},
    {"RLIMIT", 0x57113925, d<rlimit_entry>},
    {"SECCOMP", image::magic::kSeccomp, d<seccomp_entry>},
    {"STATS", image::magic::kStats, d<stats_entry>},
    {"TIMENS", image::magic::kTimens, d<timens_entry>},
    {"MNTS", image::kMntsMagic, d<mnt_entry>},
    {"CGROUP", image::magic::kCgroup, d<cgroup_entry>},
    {"UTSNS", image::magic::kUtsns, d<utsns_entry>},
    {"TCP_STREAM", image::magic::kTcpStream, d<tcp_stream_entry>, nullptr, nullptr, false, 1, true},
};

// Kinds crit names but cryo's schema has no message for.
const std::pair<const char*, uint32_t> kForeign[] = {
    {"PIDNS", 0x61157326},    {"TUNFILE", 0x57143751},     {"IRMAP_CACHE", 0x57004059},
    {"NETDEV", 0x57373951},   {"IPCNS_SEM", 0x59573019},   {"IPCNS_MSG", 0x55453737},
    {"NETNS", 0x55933752},    {"USERNS", 0x55474906},      {"AUTOFS", 0x49353943},
    {"CPUINFO", 0x61404013},  {"BPFMAP_FILE", 0x57506142}, {"BPFMAP_DATA", 0x64324033},
    {"APPARMOR", 0x59423047}, {"SIGNAL", 0x59255647},      {"BINFMT_MISC", 0x67343323},
    {"KDAT", 0x57023458},
};

// The named bits crit shows for a field marked (criu).flags.
struct Bit {
  const char* name;
  uint64_t value;
};
struct FlagMap {
  const char* name;
  std::vector<Bit> bits;
};
const FlagMap kFlagMaps[] = {
    {"mmap.prot", {{"PROT_READ", 0x1}, {"PROT_WRITE", 0x2}, {"PROT_EXEC", 0x4}}},
    {"mmap.flags",
     {{"MAP_SHARED", 0x1}, {"MAP_PRIVATE", 0x2}, {"MAP_ANON", 0x20}, {"MAP_GROWSDOWN", 0x100}}},
    {"mmap.status",
     {{"VMA_AREA_NONE", 0},
      {"VMA_AREA_REGULAR", 1u << 0},
      {"VMA_AREA_STACK", 1u << 1},
      {"VMA_AREA_VSYSCALL", 1u << 2},
      {"VMA_AREA_VDSO", 1u << 3},
      {"VMA_AREA_HEAP", 1u << 5},
      {"VMA_FILE_PRIVATE", 1u << 6},
      {"VMA_FILE_SHARED", 1u << 7},
      {"VMA_ANON_SHARED", 1u << 8},
      {"VMA_ANON_PRIVATE", 1u << 9},
      {"VMA_AREA_SYSVIPC", 1u << 10},
      {"VMA_AREA_SOCKET", 1u << 11},
      {"VMA_AREA_VVAR", 1u << 12},
      {"VMA_AREA_AIORING", 1u << 13},
      {"VMA_UNSUPP", 1u << 31}}},
    {"rfile.flags",
     {{"O_WRONLY", 01},
      {"O_RDWR", 02},
      {"O_CREAT", 0100},
      {"O_EXCL", 0200},
      {"O_NOCTTY", 0400},
      {"O_TRUNC", 01000},
      {"O_APPEND", 02000},
      {"O_NONBLOCK", 04000},
      {"O_DSYNC", 010000},
      {"FASYNC", 020000},
      {"O_DIRECT", 040000},
      {"O_LARGEFILE", 0100000},
      {"O_DIRECTORY", 0200000},
      {"O_NOFOLLOW", 0400000},
      {"O_NOATIME", 01000000},
      {"O_CLOEXEC", 02000000}}},
    {"pmap.flags", {{"PE_PARENT", 1u << 0}, {"PE_LAZY", 1u << 1}, {"PE_PRESENT", 1u << 2}}},
    {"seals.flags",
     {{"F_SEAL_SEAL", 0x1},
      {"F_SEAL_SHRINK", 0x2},
      {"F_SEAL_GROW", 0x4},
      {"F_SEAL_WRITE", 0x8},
      {"F_SEAL_FUTURE_WRITE", 0x10}}},
};

// The named values crit shows for a field marked (criu).dict: dict -> field name -> values.
struct Named {
  const char* dict;
  const char* field;
  int64_t value;
  const char* name;
};
const Named kNamed[] = {
    {"gen", "task_state", 1, "Alive"},
    {"gen", "task_state", 3, "Zombie"},
    {"gen", "task_state", 6, "Stopped"},
    {"sk", "family", 1, "UNIX"},
    {"sk", "family", 2, "INET"},
    {"sk", "family", 10, "INET6"},
    {"sk", "family", 16, "NETLINK"},
    {"sk", "family", 17, "PACKET"},
    {"sk", "type", 1, "STREAM"},
    {"sk", "type", 2, "DGRAM"},
    {"sk", "type", 3, "RAW"},
    {"sk", "type", 5, "SEQPACKET"},
    {"sk", "type", 10, "PACKET"},
    {"sk", "state", 1, "ESTABLISHED"},
    {"sk", "state", 2, "SYN_SENT"},
    {"sk", "state", 3, "SYN_RECV"},
    {"sk", "state", 4, "FIN_WAIT1"},
    {"sk", "state", 5, "FIN_WAIT2"},
    {"sk", "state", 6, "TIME_WAIT"},
    {"sk", "state", 7, "CLOSE"},
    {"sk", "state", 8, "CLOSE_WAIT"},
    {"sk", "state", 9, "LAST_ACK"},
    {"sk", "state", 10, "LISTEN"},
    {"sk", "proto", 0, "IP"},
    {"sk", "proto", 6, "TCP"},
    {"sk", "proto", 17, "UDP"},
    {"sk", "proto", 136, "UDPLITE"},
};

const FlagMap* flag_map(const std::string& name) {
  for (const auto& m : kFlagMaps)
    if (name == m.name) return &m;
  return nullptr;
}

const CRIU_Opts& opts_of(const FD* f) {
  return f->options().GetExtension(criu);
}

// --- numbers ---

std::string to_dec(Int v) {  // every value here fits 64 bits, signed or not
  char buf[24];
  auto r = v < 0 ? std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v))
                 : std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(v));
  return std::string(buf, r.ptr);
}

std::string to_hex(Int v) {  // Python's "0x%x" % v
  if (v < 0) return fmt::format("-{:#x}", static_cast<uint64_t>(-v));
  return fmt::format("{:#x}", static_cast<uint64_t>(v));
}

// Python's int(s, base) for base 0 (prefixes 0x/0o/0b, no leading zeros in decimal) or 10.
// Values beyond 128 bits are refused as out of range by the caller's check anyway.
std::optional<Int> py_int(std::string_view s, int base) {
  auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  int b = 10;
  bool prefixed = false;
  if (base == 0 && s.size() >= 2 && s[0] == '0') {
    char p = static_cast<char>(s[1] | 0x20);
    if (p == 'x') b = 16, prefixed = true;
    if (p == 'o') b = 8, prefixed = true;
    if (p == 'b') b = 2, prefixed = true;
    if (prefixed) {
      s.remove_prefix(2);
      if (!s.empty() && s[0] == '_') s.remove_prefix(1);
    }
  }
  if (s.empty()) return std::nullopt;
  unsigned __int128 v = 0;
  bool nonzero = false, last_us = true;
  for (char c : s) {
    if (c == '_') {
      if (last_us) return std::nullopt;
      last_us = true;
      continue;
    }
    last_us = false;
    int dgt;
    if (c >= '0' && c <= '9')
      dgt = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
      dgt = (c | 0x20) - 'a' + 10;
    else
      return std::nullopt;
    if (dgt >= b) return std::nullopt;
    if (v > (~static_cast<unsigned __int128>(0) >> 8)) return std::nullopt;
    v = v * static_cast<unsigned>(b) + static_cast<unsigned>(dgt);
    if (dgt) nonzero = true;
  }
  if (last_us) return std::nullopt;
  // Base 0 refuses "012" (but takes "00").
  if (base == 0 && !prefixed && s.size() > 1 && s[0] == '0' && nonzero) return std::nullopt;
  if (v > static_cast<unsigned __int128>(~static_cast<uint64_t>(0)) * 2) return std::nullopt;
  Int r = static_cast<Int>(v);
  return neg ? -r : r;
}

// --- bytes ---

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Python's os.major/os.minor/os.makedev (glibc's dev_t layout).
uint64_t glibc_major(uint64_t dev) {
  return ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffull);
}
uint64_t glibc_minor(uint64_t dev) {
  return (dev & 0xff) | ((dev >> 12) & ~0xffull);
}
uint64_t glibc_makedev(uint64_t ma, uint64_t mi) {
  return ((ma & 0xfff) << 8) | ((ma & ~0xfffull) << 32) | (mi & 0xff) | ((mi & ~0xffull) << 12);
}

// Python's ipaddress .compressed of an IPv6 address (no dotted IPv4 tail).
std::string ipv6_text(const unsigned char b[16]) {
  unsigned h[8];
  for (int k = 0; k < 8; k++) h[k] = (b[2 * k] << 8) | b[2 * k + 1];
  int best = -1, best_len = 0, cur = -1, cur_len = 0;
  for (int k = 0; k < 8; k++) {
    if (h[k] == 0) {
      if (cur < 0) cur = k;
      if (++cur_len > best_len) best = cur, best_len = cur_len;
    } else {
      cur = -1, cur_len = 0;
    }
  }
  if (best_len < 2) best = -1;
  std::string s;
  for (int k = 0; k < 8; k++) {
    if (k == best) {
      s += "::";
      k += best_len - 1;
      continue;
    }
    if (!s.empty() && s.back() != ':') s += ':';
    s += fmt::format("{:x}", h[k]);
  }
  return s;
}

// --- image bytes -> JSON ---

class Decoder {
 public:
  Decoder(json::Writer& w, bool pretty) : w_(w), pretty_(pretty) {}

  // The set fields of m, in field-number order, as members of the object being written.
  void fields(const pb::Message& m, bool hex) {
    const pb::Reflection* r = m.GetReflection();
    std::vector<const FD*> fields;
    r->ListFields(m, &fields);
    for (const FD* f : fields) {
      const CRIU_Opts& o = opts_of(f);
      bool fhex = hex || o.hex();
      w_.key(f->name());
      if (!f->is_repeated()) {
        value(m, r, f, -1, fhex);
        continue;
      }
      w_.begin_array();
      int n = r->FieldSize(m, f);
      if (pretty_ && o.ipadd() && (n == 1 || n >= 4) && f->cpp_type() == FD::CPPTYPE_UINT32) {
        ip(m, r, f, n);
      } else {
        for (int i = 0; i < n; i++) value(m, r, f, i, fhex);
      }
      w_.end_array();
    }
  }

 private:
  void ip(const pb::Message& m, const pb::Reflection* r, const FD* f, int n) {
    unsigned char b[16];
    int words = n == 1 ? 1 : 4;
    for (int k = 0; k < words; k++) {
      uint32_t w = r->GetRepeatedUInt32(m, f, k);
      std::memcpy(b + 4 * k, &w, 4);  // the word holds the address bytes in memory order
    }
    if (words == 1)
      w_.string(fmt::format("{}.{}.{}.{}", b[0], b[1], b[2], b[3]));
    else
      w_.string(ipv6_text(b));
  }

  void value(const pb::Message& m, const pb::Reflection* r, const FD* f, int i, bool hex) {
    bool rep = i >= 0;
    Int v;
    switch (f->cpp_type()) {
      case FD::CPPTYPE_MESSAGE:
        w_.begin_object();
        fields(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), hex);
        w_.end_object();
        return;
      case FD::CPPTYPE_BOOL:
        w_.boolean(rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f));
        return;
      case FD::CPPTYPE_ENUM:
        w_.string((rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f))->name());
        return;
      case FD::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                   : r->GetStringReference(m, f, &scratch);
        if (f->type() != FD::TYPE_BYTES)
          w_.string(s);
        else if (opts_of(f).conv() == "unix_name")
          w_.string(qp_encode(s));
        else
          w_.string(base64_lines(s));
        return;
      }
      case FD::CPPTYPE_INT32:
        v = rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f);
        break;
      case FD::CPPTYPE_INT64:
        v = rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f);
        break;
      case FD::CPPTYPE_UINT32:
        v = rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f);
        break;
      case FD::CPPTYPE_UINT64:
        v = rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f);
        break;
      default:
        fail("field {} has a type crit does not decode (float or double)", f->full_name());
    }
    if (!pretty_) return w_.number(to_dec(v));
    const CRIU_Opts& o = opts_of(f);
    if (hex) return w_.string(to_hex(v));
    if (o.dev()) {
      uint64_t u = static_cast<uint64_t>(v);
      if (o.odev()) return w_.string(fmt::format("{}:{}", glibc_major(u), glibc_minor(u)));
      return w_.string(fmt::format("{}:{}", u >> 20, u & 0xfffff));
    }
    if (!o.flags().empty()) {
      const FlagMap* fm = flag_map(o.flags());
      if (!fm) return w_.string(to_hex(v));
      std::string s;
      uint64_t u = static_cast<uint64_t>(v), known = 0;
      for (const Bit& b : fm->bits) {
        known |= b.value;
        if (u & b.value) {
          if (!s.empty()) s += " | ";
          s += b.name;
        }
      }
      if (u & ~known) {
        if (!s.empty()) s += " | ";
        s += fmt::format("{:#x}", u & ~known);
      }
      return w_.string(s);
    }
    if (!o.dict().empty()) {
      for (const Named& n : kNamed)
        if (o.dict() == n.dict && f->name() == n.field && v == n.value) return w_.string(n.name);
    }
    w_.number(to_dec(v));
  }

  json::Writer& w_;
  bool pretty_;
};

// A cursor over the image bytes.
class In {
 public:
  explicit In(std::string_view d) : d_(d) {}
  bool done() const { return off_ >= d_.size(); }
  size_t offset() const { return off_; }
  uint32_t u32(const char* what) {
    if (d_.size() - off_ < 4)
      fail("truncated image: {} at offset {} is cut short ({} of 4 bytes)", what, off_,
           d_.size() - off_);
    uint32_t v;
    std::memcpy(&v, d_.data() + off_, 4);
    off_ += 4;
    return v;
  }
  std::string_view take(size_t n, const char* what) {
    if (d_.size() - off_ < n)
      fail("truncated image: {} at offset {} needs {} bytes, {} left", what, off_, n,
           d_.size() - off_);
    std::string_view s = d_.substr(off_, n);
    off_ += n;
    return s;
  }
  // Up to n bytes: as many as there are.
  std::string_view take_some(size_t n) {
    std::string_view s = d_.substr(off_, n);
    off_ += s.size();
    return s;
  }
  std::string_view rest() {
    std::string_view s = d_.substr(off_);
    off_ = d_.size();
    return s;
  }

 private:
  std::string_view d_;
  size_t off_ = 0;
};

uint64_t uint_field(const pb::Message& m, const char* name) {
  const FD* f = m.GetDescriptor()->FindFieldByName(name);
  const pb::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_UINT32:
      return r->GetUInt32(m, f);
    case FD::CPPTYPE_UINT64:
      return r->GetUInt64(m, f);
    case FD::CPPTYPE_INT32:
      return static_cast<uint64_t>(r->GetInt32(m, f));
    case FD::CPPTYPE_INT64:
      return static_cast<uint64_t>(r->GetInt64(m, f));
    default:
      return 0;
  }
}

bool bool_field(const pb::Message& m, const char* name) {
  const FD* f = m.GetDescriptor()->FindFieldByName(name);
  return f && m.GetReflection()->GetBool(m, f);
}

// Parses entry n (of type) into m, which is reused from entry to entry.
void parse_entry(In& in, pb::Message& m, size_t n) {
  size_t at = in.offset();
  uint32_t size = in.u32("an entry's size");
  if (size > 0x7fffffff) fail("corrupt image: entry {} at offset {} has size {:#x}", n, at, size);
  std::string_view body = in.take(size, "an entry");
  // As crit: fields that are required but missing do not stop the decoding.
  if (!m.ParsePartialFromArray(body.data(), static_cast<int>(body.size())))
    fail("corrupt image: entry {} at offset {} is not a valid {} message", n, at,
         m.GetDescriptor()->name());
}

std::unique_ptr<pb::Message> new_message(const pb::Descriptor* type) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(type)->New());
}

}  // namespace

const Kind* kind_by_magic(uint32_t magic) {
  for (const Kind& k : kKinds)
    if (k.magic == magic) return &k;
  return nullptr;
}

const Kind* kind_by_name(std::string_view name) {
  for (const Kind& k : kKinds)
    if (name == k.name) return &k;
  return nullptr;
}

std::string decode_image(std::string_view data, bool pretty) {
  In in(data);
  if (data.empty()) fail("empty file: not an image");
  uint32_t magic = in.u32("the magic");
  if (magic == image::magic::kCommon || magic == image::magic::kService)
    magic = in.u32("the magic");
  const Kind* kind = kind_by_magic(magic);
  if (!kind) {
    for (const auto& [name, m] : kForeign)
      if (m == magic) fail("image kind {} is not one cryo's schema knows", name);
    fail("unknown magic {:#x}: not an image (raw data such as pages-N.img has no magic)", magic);
  }
  std::string out;
  out.reserve(data.size() * (pretty ? 6 : 3) + 64);
  json::Writer w(out, pretty);
  Decoder dec(w, pretty);
  std::unique_ptr<pb::Message> first = new_message(kind->message());
  std::unique_ptr<pb::Message> rest = kind->rest ? new_message(kind->rest()) : nullptr;
  w.begin_object();
  w.key("magic");
  w.string(kind->name);
  w.key("entries");
  w.begin_array();
  for (size_t n = 0; !in.done(); n++) {
    pb::Message& m = (n > 0 && rest) ? *rest : *first;
    parse_entry(in, m, n);
    w.begin_object();
    dec.fields(m, false);
    if (kind->ghost) {
      if (n == 0 && !bool_field(m, "chunks")) {
        w.key("extra");
        w.string(base64_lines(in.rest()));
      } else if (n > 0) {
        w.key("extra");
        w.string(base64_lines(in.take(uint_field(m, "len"), "data")));
      }
    } else if (kind->tcp_queues) {
      w.key("extra");
      w.begin_object();
      w.key("inq");
      w.string(base64_lines(in.take(uint_field(m, "inq_len"), "the receive queue")));
      w.key("outq");
      w.string(base64_lines(in.take(uint_field(m, "outq_len"), "the send queue")));
      w.end_object();
    } else if (kind->extra_align > 1) {
      uint64_t len = uint_field(m, kind->extra_len);
      w.key("extra");
      w.string(base64_lines(in.take_some(len)));
      in.take_some((kind->extra_align - len % kind->extra_align) % kind->extra_align);
    } else if (kind->extra_len) {
      uint64_t len = uint_field(m, kind->extra_len);
      w.key("extra");
      w.string(base64_lines(in.take(len, "an entry's data")));
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return out;
}

// --- JSON -> image bytes ---

namespace {

class Encoder {
 public:
  void message(pb::Message* m, const json::Value& obj, const std::string& path) {
    if (obj.type != json::Value::Type::kObject)
      fail("{}: expected an object, found {}", where(path), obj.kind());
    const pb::Descriptor* desc = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    for (int k = 0; k < desc->field_count(); k++) {
      const FD* f = desc->field(k);
      const json::Value* v = obj.find(f->name());
      if (!v) continue;
      std::string p = path.empty() ? f->name() : path + "." + f->name();
      if (!f->is_repeated()) {
        if (f->cpp_type() == FD::CPPTYPE_MESSAGE)
          message(r->MutableMessage(m, f), *v, p);
        else
          scalar(m, r, f, *v, p, false);
        continue;
      }
      if (v->type != json::Value::Type::kArray)
        fail("{}: expected a list, found {}", where(p), v->kind());
      if (v->items.empty()) continue;
      if (opts_of(f).ipadd() && v->items[0].is_string()) {
        ip(m, r, f, v->items[0], p);
        continue;
      }
      for (size_t i = 0; i < v->items.size(); i++) {
        std::string pi = fmt::format("{}[{}]", p, i);
        if (f->cpp_type() == FD::CPPTYPE_MESSAGE)
          message(r->AddMessage(m, f), v->items[i], pi);
        else
          scalar(m, r, f, v->items[i], pi, true);
      }
    }
  }

  std::string entry_;  // "entry N" for messages

 private:
  std::string where(const std::string& path) const {
    return path.empty() ? entry_ : entry_ + ", field " + path;
  }

  void ip(pb::Message* m, const pb::Reflection* r, const FD* f, const json::Value& v,
          const std::string& p) {
    unsigned char b[16];
    int words;
    if (::inet_pton(AF_INET, v.text.c_str(), b) == 1)
      words = 1;
    else if (::inet_pton(AF_INET6, v.text.c_str(), b) == 1)
      words = 4;
    else
      fail("{}: '{}' is not an IPv4 or IPv6 address", where(p), v.text);
    for (int k = 0; k < words; k++) {
      uint32_t w;
      std::memcpy(&w, b + 4 * k, 4);
      r->AddUInt32(m, f, w);
    }
  }

  Int integer(const FD* f, const json::Value& v, const std::string& p) {
    const CRIU_Opts& o = opts_of(f);
    switch (v.type) {
      case json::Value::Type::kBool:
        return v.boolean ? 1 : 0;
      case json::Value::Type::kNumber: {
        if (v.text.find_first_of(".eE") == std::string::npos) {
          if (auto n = py_int(v.text, 10)) return *n;
          fail("{}: number {} is out of range", where(p), v.text);
        }
        long double d = std::strtold(v.text.c_str(), nullptr);  // int(float): toward zero
        if (!(d > -1.8e19L && d < 1.9e19L)) fail("{}: number {} is out of range", where(p), v.text);
        return static_cast<Int>(d);
      }
      case json::Value::Type::kString:
        break;
      default:
        fail("{}: expected a number, found {}", where(p), v.kind());
    }
    const std::string& s = v.text;
    if (o.dev()) {
      size_t colon = s.find(':');
      std::optional<Int> ma, mi;
      if (colon != std::string::npos && s.find(':', colon + 1) == std::string::npos) {
        ma = py_int(std::string_view(s).substr(0, colon), 10);
        mi = py_int(std::string_view(s).substr(colon + 1), 10);
      }
      if (!ma || !mi || *ma < 0 || *mi < 0)
        fail("{}: '{}' is not a device number MAJOR:MINOR", where(p), s);
      if (o.odev())
        return static_cast<Int>(
            glibc_makedev(static_cast<uint64_t>(*ma), static_cast<uint64_t>(*mi)));
      return (*ma << 20) | *mi;
    }
    if (const FlagMap* fm = o.flags().empty() ? nullptr : flag_map(o.flags())) {
      if (s.empty()) return 0;
      Int sum = 0;
      size_t start = 0;
      for (;;) {
        size_t bar = s.find('|', start);
        std::string_view part =
            std::string_view(s).substr(start, bar == std::string::npos ? bar : bar - start);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        std::optional<Int> bit;
        for (const Bit& b : fm->bits)
          if (part == b.name) bit = b.value;
        if (!bit) bit = py_int(part, 0);
        if (!bit) fail("{}: '{}' is not a flag of {} nor a number", where(p), part, o.flags());
        sum += *bit;
        if (bar == std::string::npos) break;
        start = bar + 1;
      }
      return sum;
    }
    if (!o.dict().empty()) {
      for (const Named& n : kNamed)
        if (o.dict() == n.dict && f->name() == n.field && s == n.name) return n.value;
    }
    if (auto n = py_int(s, 0)) return *n;
    fail("{}: '{}' is not a number", where(p), s);
  }

  void scalar(pb::Message* m, const pb::Reflection* r, const FD* f, const json::Value& v,
              const std::string& p, bool rep) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_BOOL:
        rep ? r->AddBool(m, f, v.truthy()) : r->SetBool(m, f, v.truthy());
        return;
      case FD::CPPTYPE_ENUM: {
        const pb::EnumValueDescriptor* e =
            v.is_string() ? f->enum_type()->FindValueByName(v.text) : nullptr;
        if (!e)
          fail("{}: {} is not a name of enum {}", where(p),
               v.is_string() ? "'" + v.text + "'" : std::string(v.kind()), f->enum_type()->name());
        rep ? r->AddEnum(m, f, e) : r->SetEnum(m, f, e);
        return;
      }
      case FD::CPPTYPE_STRING: {
        std::string s;
        if (f->type() == FD::TYPE_BYTES) {
          if (!v.is_string()) fail("{}: expected a string, found {}", where(p), v.kind());
          try {
            s = opts_of(f).conv() == "unix_name" ? qp_decode(v.text) : base64_decode(v.text);
          } catch (const Error& e) {
            fail("{}: {}", where(p), e.what());
          }
        } else if (v.is_string()) {
          s = v.text;
        } else if (v.type == json::Value::Type::kNumber) {
          s = v.text;  // str(number)
        } else if (v.type == json::Value::Type::kBool) {
          s = v.boolean ? "True" : "False";
        } else {
          fail("{}: expected a string, found {}", where(p), v.kind());
        }
        rep ? r->AddString(m, f, std::move(s)) : r->SetString(m, f, std::move(s));
        return;
      }
      default:
        break;
    }
    Int n = integer(f, v, p);
    auto range = [&](Int lo, Int hi) {
      if (n < lo || n > hi)
        fail("{}: value {} is out of range for {}", where(p), to_dec(n), f->type_name());
    };
    switch (f->cpp_type()) {
      case FD::CPPTYPE_INT32:
        range(INT32_MIN, INT32_MAX);
        rep ? r->AddInt32(m, f, static_cast<int32_t>(n))
            : r->SetInt32(m, f, static_cast<int32_t>(n));
        return;
      case FD::CPPTYPE_INT64:
        range(INT64_MIN, INT64_MAX);
        rep ? r->AddInt64(m, f, static_cast<int64_t>(n))
            : r->SetInt64(m, f, static_cast<int64_t>(n));
        return;
      case FD::CPPTYPE_UINT32:
        range(0, UINT32_MAX);
        rep ? r->AddUInt32(m, f, static_cast<uint32_t>(n))
            : r->SetUInt32(m, f, static_cast<uint32_t>(n));
        return;
      case FD::CPPTYPE_UINT64:
        range(0, static_cast<Int>(UINT64_MAX));
        rep ? r->AddUInt64(m, f, static_cast<uint64_t>(n))
            : r->SetUInt64(m, f, static_cast<uint64_t>(n));
        return;
      default:
        fail("{}: field of type {} is not supported", where(p), f->type_name());
    }
  }
};

std::string extra_bytes(const json::Value* x, size_t n) {
  if (!x) fail("entry {}: no \"extra\" (the data after the entry)", n);
  if (!x->is_string()) fail("entry {}: \"extra\" must be a base64 string, found {}", n, x->kind());
  try {
    return base64_decode(x->text);
  } catch (const Error& e) {
    fail("entry {}, extra: {}", n, e.what());
  }
}

// Builds the image entry by entry, as crit's images.dump() does.
class ImageEncoder {
 public:
  void magic(const json::Value& mv) {
    if (!mv.is_string()) fail("the JSON has no \"magic\" name");
    kind_ = kind_by_name(mv.text);
    if (!kind_) {
      for (const auto& [name, m] : kForeign)
        if (mv.text == name) fail("image kind {} is not one cryo's schema knows", name);
      fail("unknown magic name '{}'", mv.text);
    }
    out_.clear();
    if (kind_->magic != image::magic::kInventory)
      put_u32(kind_->magic == image::magic::kStats ? image::magic::kService
                                                   : image::magic::kCommon);
    put_u32(kind_->magic);
    first_ = new_message(kind_->message());
    if (kind_->rest) rest_ = new_message(kind_->rest());
  }

  void entry(const json::Value& e) {
    size_t n = n_++;
    if (done_) return;  // a ghost file without chunks: crit writes its first entry only
    pb::Message& m = (n > 0 && rest_) ? *rest_ : *first_;
    m.Clear();
    Encoder enc;
    enc.entry_ = fmt::format("entry {}", n);
    enc.message(&m, e, "");
    // As crit (python protobuf's SerializeToString): an entry must be complete.
    if (!m.IsInitialized())
      fail("entry {}: required field(s) missing: {}", n, m.InitializationErrorString());
    put_u32(static_cast<uint32_t>(m.ByteSizeLong()));
    m.AppendToString(&out_);
    if (kind_->ghost) {
      if (n == 0 && !bool_field(m, "chunks")) done_ = true;
      if (n > 0 || done_) out_ += extra_bytes(e.find("extra"), n);
    } else if (kind_->tcp_queues) {
      const json::Value* x = e.find("extra");
      if (!x || x->type != json::Value::Type::kObject)
        fail("entry {}: \"extra\" must be an object with \"inq\" and \"outq\"", n);
      out_ += extra_bytes(x->find("inq"), n);
      out_ += extra_bytes(x->find("outq"), n);
    } else if (kind_->extra_len) {
      const json::Value* x = e.find("extra");
      if (x && x->truthy()) out_ += padded(extra_bytes(x, n), uint_field(m, kind_->extra_len));
    }
  }

  std::string take() { return std::move(out_); }

 private:
  void put_u32(uint32_t v) { out_.append(reinterpret_cast<const char*>(&v), 4); }
  // As crit writes a padded extra: the first `len` bytes, then zeros to the alignment.
  std::string padded(std::string data, uint64_t len) const {
    const unsigned a = kind_->extra_align;
    if (a == 1) return data;
    if (data.size() > len) data.resize(len);
    return data.append((a - len % a) % a, '\0');
  }

  const Kind* kind_ = nullptr;
  std::string out_;
  std::unique_ptr<pb::Message> first_, rest_;
  size_t n_ = 0;
  bool done_ = false;
};

}  // namespace

std::string encode_image(std::string_view text) {
  // Entry by entry when the JSON starts {"magic": ..., "entries": [ as crit writes it: a large
  // image is never held as a whole JSON tree. Any failure there is judged again on the whole
  // document (a "magic" repeated after the entries would be the one that counts).
  try {
    ImageEncoder enc;
    if (json::parse_image(
            text, [&](const json::Value& m) { enc.magic(m); },
            [&](const json::Value& e) { enc.entry(e); }))
      return enc.take();
  } catch (const Error&) {
  }
  json::Value img = json::parse(text);
  if (img.type != json::Value::Type::kObject)
    fail("the JSON is {}, not an image object {{\"magic\": ..., \"entries\": [...]}}", img.kind());
  const json::Value* mv = img.find("magic");
  if (!mv) fail("the JSON has no \"magic\" name");
  const json::Value* ev = img.find("entries");
  if (!ev || ev->type != json::Value::Type::kArray) fail("the JSON has no \"entries\" list");
  ImageEncoder enc;
  enc.magic(*mv);
  for (const json::Value& e : ev->items) enc.entry(e);
  return enc.take();
}

// --- bytes encodings ---

std::string base64_lines(std::string_view data) {
  std::string out;
  out.reserve(data.size() * 4 / 3 + data.size() / 57 + 4);
  size_t line = 0;
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t v = static_cast<unsigned char>(data[i]) << 16;
    size_t n = std::min<size_t>(3, data.size() - i);
    if (n > 1) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (n > 2) v |= static_cast<unsigned char>(data[i + 2]);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += n > 1 ? kB64[(v >> 6) & 63] : '=';
    out += n > 2 ? kB64[v & 63] : '=';
    line += 4;
    if (line == 76) {  // 57 input bytes a line
      out += '\n';
      line = 0;
    }
  }
  if (line) out += '\n';
  return out;
}

std::string base64_decode(std::string_view text) {
  // As binascii.a2b_base64: characters outside the alphabet are skipped, a complete padding
  // ends the data, a group cut short is an error.
  std::string out;
  out.reserve(text.size() * 3 / 4);
  int quad = 0, pads = 0;
  unsigned acc = 0;
  for (char c : text) {
    if (c == '=') {
      if (quad >= 2 && quad + ++pads >= 4) return out;
      continue;
    }
    const char* p = c ? std::strchr(kB64, c) : nullptr;
    if (!p) continue;
    unsigned v = static_cast<unsigned>(p - kB64);
    pads = 0;
    switch (quad) {
      case 0:
        acc = v;
        break;
      case 1:
        out += static_cast<char>((acc << 2) | (v >> 4));
        acc = v & 0xf;
        break;
      case 2:
        out += static_cast<char>((acc << 4) | (v >> 2));
        acc = v & 0x3;
        break;
      case 3:
        out += static_cast<char>((acc << 6) | v);
        break;
    }
    quad = (quad + 1) % 4;
  }
  if (quad != 0) fail("bad base64: incorrect padding");
  return out;
}

std::string qp_encode(std::string_view in) {
  constexpr size_t kMaxLine = 76;
  const size_t n = in.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
  size_t nl = in.find('\n');
  bool crlf = nl != std::string_view::npos && nl > 0 && in[nl - 1] == '\r';
  std::string out;
  size_t linelen = 0;
  auto soft_break = [&] {
    out += '=';
    if (crlf) out += '\r';
    out += '\n';
    linelen = 0;
  };
  auto quoted = [&](unsigned char c) {
    out += '=';
    out += "0123456789ABCDEF"[c >> 4];
    out += "0123456789ABCDEF"[c & 15];
  };
  for (size_t i = 0; i < n;) {
    unsigned char c = at(i);
    bool last = i + 1 == n;
    bool quote = c > 126 || c == '=' ||
                 (c == '.' && linelen == 0 &&
                  (last || at(i + 1) == '\n' || at(i + 1) == '\r' || at(i + 1) == 0)) ||
                 ((c == '\t' || c == ' ') && last) ||
                 (c < 33 && c != '\r' && c != '\n' && c != '\t' && c != ' ');
    if (quote) {
      if (linelen + 3 >= kMaxLine) soft_break();
      quoted(c);
      i++;
      linelen += 3;
    } else if (c == '\n' || (c == '\r' && i + 1 < n && at(i + 1) == '\n')) {
      linelen = 0;
      if (!out.empty() && (out.back() == ' ' || out.back() == '\t')) {
        unsigned char w = static_cast<unsigned char>(out.back());
        out.pop_back();
        quoted(w);
      }
      if (crlf) out += '\r';
      out += '\n';
      i += c == '\r' ? 2 : 1;
    } else {
      if (!last && at(i + 1) != '\n' && linelen + 1 >= kMaxLine) soft_break();
      linelen++;
      out += static_cast<char>(c);
      i++;
    }
  }
  return out;
}

std::string qp_decode(std::string_view in) {
  auto hexv = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] != '=') {
      out += in[i++];
      continue;
    }
    i++;
    if (i >= in.size()) break;
    if (in[i] == '\n' || in[i] == '\r') {  // a soft line break
      while (i < in.size() && in[i] != '\n') i++;
      if (i < in.size()) i++;
    } else if (in[i] == '=') {
      out += '=';
      i++;
    } else if (i + 1 < in.size() && hexv(in[i]) >= 0 && hexv(in[i + 1]) >= 0) {
      out += static_cast<char>(hexv(in[i]) * 16 + hexv(in[i + 1]));
      i += 2;
    } else {
      out += '=';
    }
  }
  return out;
}

}  // namespace cryo::imgtool
