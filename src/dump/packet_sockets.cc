// Packet (AF_PACKET) sockets: what sock_diag tells of them (bound interface, version,
// flags, multicast memberships, fanout group, ring layouts) and their socket options. Frames
// waiting in a receive queue or a ring are captured traffic, not saved (CRIU does not either).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

#include "base/error.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/sockets.h"
#include "kernel/sock_diag.h"

namespace cryo::dump {
namespace {

packet_ring* fill_ring(const packet_diag_ring& d, packet_ring* r) {
  r->set_block_size(d.pdr_block_size);
  r->set_block_nr(d.pdr_block_nr);
  r->set_frame_size(d.pdr_frame_size);
  r->set_frame_nr(d.pdr_frame_nr);
  r->set_retire_tmo(d.pdr_retire_tmo);
  r->set_sizeof_priv(d.pdr_sizeof_priv);
  r->set_features(d.pdr_features);
  return r;
}

class PacketSocketKind : public FileKind {
 public:
  fd_types type() const override { return PACKETSK; }
  bool claims(FdContext& c) override { return c.socket_domain() == AF_PACKET; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    const uint32_t ino = c.link_inode();
    auto it = diag_.find(ino);
    if (it == diag_.end()) {
      diag_ = kernel::packet_diag_all();
      it = diag_.find(ino);
    }
    if (it == diag_.end() || !it->second.has_info)
      fail("{}: packet socket {} is unknown to sock_diag (another network namespace?)", c.where(),
           ino);
    const kernel::PacketDiag& d = it->second;
    auto* p = e->mutable_psk();
    p->set_id(id);
    p->set_type(d.type);
    p->set_protocol(htons(d.proto));
    p->set_flags(c.flags);
    p->set_ifindex(static_cast<uint32_t>(d.info.pdi_index));
    zero_fown(p->mutable_fown());
    fill_sk_opts(c.copy(), p->mutable_opts());
    p->set_version(d.info.pdi_version);
    p->set_reserve(d.info.pdi_reserve);
    p->set_aux_data(d.info.pdi_flags & PDI_AUXDATA);
    p->set_orig_dev(d.info.pdi_flags & PDI_ORIGDEV);
    p->set_vnet_hdr(d.info.pdi_flags & PDI_VNETHDR);
    p->set_loss(d.info.pdi_flags & PDI_LOSS);
    p->set_timestamp(d.info.pdi_tstamp);
    p->set_copy_thresh(d.info.pdi_copy_thresh);
    for (const packet_diag_mclist& m : d.mclist) {
      if (m.pdmc_count != 1)
        fail(
            "{}: packet socket {} joined membership type {} on interface {} {} times: only "
            "once is supported (as in CRIU)",
            c.where(), ino, m.pdmc_type, m.pdmc_index, m.pdmc_count);
      auto* ml = p->add_mclist();
      ml->set_index(m.pdmc_index);
      ml->set_type(m.pdmc_type);
      if (m.pdmc_type == PACKET_MR_MULTICAST || m.pdmc_type == PACKET_MR_UNICAST)
        ml->set_addr(reinterpret_cast<const char*>(m.pdmc_addr),
                     std::min<size_t>(m.pdmc_alen, sizeof m.pdmc_addr));
      else
        ml->set_addr("");
    }
    if (d.has_fanout) p->set_fanout(d.fanout);
    if (d.has_rx_ring) fill_ring(d.rx_ring, p->mutable_rx_ring());
    if (d.has_tx_ring) fill_ring(d.tx_ring, p->mutable_tx_ring());
    log::debug("{}: packet socket {} type {} protocol {:#x} interface {}", c.where(), ino, d.type,
               d.proto, d.info.pdi_index);
  }

 private:
  std::map<uint32_t, kernel::PacketDiag> diag_;
};

}  // namespace

std::unique_ptr<FileKind> make_packet_socket_kind(FileTable&) {
  return std::make_unique<PacketSocketKind>();
}

}  // namespace cryo::dump
