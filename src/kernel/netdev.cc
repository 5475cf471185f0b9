#include "kernel/netdev.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::kernel {

void set_link_up(const std::string& name) {
  if (name.size() >= IFNAMSIZ) fail("link name {} is too long", name);
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) fail_sys("cannot create a socket to set link {} up", name);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) fail_sys("cannot read the flags of link {}", name);
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) fail_sys("cannot set link {} up", name);
}

}  // namespace cryo::kernel
