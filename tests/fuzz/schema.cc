#include "schema.h"

#include <cstring>

#include "core.pb.h"
#include "file-lock.pb.h"
#include "fs.pb.h"
#include "ghost-file.pb.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "inventory.pb.h"
#include "memfd.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pipe-data.pb.h"
#include "pstree.pb.h"
#include "remap-file-path.pb.h"
#include "seccomp.pb.h"
#include "sk-packet.pb.h"
#include "stats.pb.h"
#include "tty.pb.h"

namespace cryo::fuzz {
namespace {

namespace m = image::magic;

template <typename T>
const google::protobuf::Message* of() {
  return &T::default_instance();
}

const std::vector<ImageKind>& kinds() {
  static const std::vector<ImageKind> k = {
      {"inventory.img", m::kInventory, false, of<inventory_entry>(), nullptr, Raw::kNone},
      {"pstree.img", m::kPstree, true, of<pstree_entry>(), nullptr, Raw::kNone},
      {"core-N.img", m::kCore, true, of<core_entry>(), nullptr, Raw::kNone},
      {"ids-N.img", m::kIds, true, of<task_kobj_ids_entry>(), nullptr, Raw::kNone},
      {"mm-N.img", m::kMm, true, of<mm_entry>(), nullptr, Raw::kNone},
      {"fs-N.img", m::kFs, true, of<fs_entry>(), nullptr, Raw::kNone},
      {"fdinfo-N.img", m::kFdinfo, true, of<fdinfo_entry>(), nullptr, Raw::kNone},
      {"pagemap-shmem-N.img", m::kPagemap, true, of<pagemap_head>(), of<pagemap_entry>(),
       Raw::kNone},
      {"pagemap-N.img", m::kPagemap, true, of<pagemap_head>(), of<pagemap_entry>(), Raw::kNone},
      {"pages-N.img", 0, false, nullptr, nullptr, Raw::kNone},
      {"files.img", m::kFiles, true, of<file_entry>(), nullptr, Raw::kNone},
      {"tty-info.img", m::kTtyInfo, true, of<tty_info_entry>(), nullptr, Raw::kNone},
      {"tty-data.img", m::kTtyData, true, of<tty_data_entry>(), nullptr, Raw::kNone},
      {"seccomp.img", m::kSeccomp, true, of<seccomp_entry>(), nullptr, Raw::kNone},
      {"pipes-data.img", m::kPipesData, true, of<pipe_data_entry>(), nullptr, Raw::kPipeData},
      {"fifo-data.img", m::kFifoData, true, of<pipe_data_entry>(), nullptr, Raw::kPipeData},
      {"sk-queues.img", m::kSkQueues, true, of<sk_packet_entry>(), nullptr, Raw::kSkQueue},
      {"memfd.img", m::kMemfdInode, true, of<memfd_inode_entry>(), nullptr, Raw::kNone},
      {"ghost-file-N.img", m::kGhostFile, true, of<ghost_file_entry>(), of<ghost_chunk_entry>(),
       Raw::kGhost},
      {"remap-fpath.img", m::kRemapFpath, true, of<remap_file_path_entry>(), nullptr, Raw::kNone},
      {"file-locks.img", m::kFileLocks, true, of<file_lock_entry>(), nullptr, Raw::kNone},
      {"stats-dump", m::kStats, true, of<stats_entry>(), nullptr, Raw::kNone},
      {"stats-restore", m::kStats, true, of<stats_entry>(), nullptr, Raw::kNone},
  };
  return k;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

uint32_t u32_at(std::string_view d, size_t at) {
  uint32_t v;
  std::memcpy(&v, d.data() + at, 4);
  return v;
}

}  // namespace

std::string pattern_of(std::string_view name) {
  const size_t dash = name.rfind('-');
  const size_t dot = name.rfind(".img");
  if (dash == std::string_view::npos || dot == std::string_view::npos || dot <= dash + 1)
    return std::string(name);
  for (size_t i = dash + 1; i < dot; i++)
    if (!is_hex(name[i])) return std::string(name);
  return std::string(name.substr(0, dash + 1)) + "N" + std::string(name.substr(dot));
}

const ImageKind* kind_of(std::string_view name) {
  const std::string p = pattern_of(name);
  for (const ImageKind& k : kinds())
    if (p == k.pattern) return &k;
  return nullptr;
}

std::unique_ptr<google::protobuf::Message> new_entry(const ImageKind& kind, size_t index) {
  const google::protobuf::Message* proto = index == 0 || !kind.rest ? kind.first : kind.rest;
  return std::unique_ptr<google::protobuf::Message>(proto->New());
}

size_t raw_after(const ImageKind& kind, size_t index, const google::protobuf::Message& msg) {
  switch (kind.raw) {
    case Raw::kNone:
      return 0;
    case Raw::kPipeData:
      return dynamic_cast<const pipe_data_entry&>(msg).bytes();
    case Raw::kSkQueue:
      return dynamic_cast<const sk_packet_entry&>(msg).length();
    case Raw::kGhost:
      if (index == 0) {
        const auto& g = dynamic_cast<const ghost_file_entry&>(msg);
        return g.chunks() ? 0 : g.size();
      }
      return dynamic_cast<const ghost_chunk_entry&>(msg).len();
  }
  return 0;
}

Layout split(const ImageKind& kind, std::string_view data) {
  Layout l;
  if (kind.magic == 0) {  // raw file: no entries
    l.tail = data.size();
    l.whole = true;
    return l;
  }
  l.header = kind.common ? 8 : 4;
  l.tail = std::min(l.header, data.size());
  if (data.size() < l.header) return l;
  size_t off = l.header;
  for (size_t index = 0; off < data.size(); index++) {
    if (data.size() - off < 4) return l;
    const uint32_t len = u32_at(data, off);
    if (data.size() - off - 4 < len) return l;
    size_t raw = 0;
    if (kind.raw != Raw::kNone) {
      auto msg = new_entry(kind, index);
      if (!msg->ParsePartialFromArray(data.data() + off + 4, static_cast<int>(len))) return l;
      raw = raw_after(kind, index, *msg);
      if (data.size() - off - 4 - len < raw) return l;
    }
    l.entries.push_back({off, len, raw});
    off += 4 + len + raw;
    l.tail = off;
  }
  l.whole = true;
  return l;
}

}  // namespace cryo::fuzz
