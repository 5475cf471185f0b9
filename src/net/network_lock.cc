#include "net/network_lock.h"

#include <sys/socket.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "net/run_tool.h"

namespace cryo::net {
namespace {

std::string table_name(pid_t root) {
  return fmt::format("cryo-{}", root);
}

// --- nftables: one table of the inet family, with an input and an output chain.

std::string nft_chains(const std::string& t) {
  return fmt::format(
      "add table inet {0}\n"
      "add chain inet {0} input {{ type filter hook input priority -150; policy accept; }}\n"
      "add chain inet {0} output {{ type filter hook output priority -150; policy accept; }}\n",
      t);
}

std::string nft_rule(const std::string& t, const char* chain, const Connection& c, bool in) {
  const char* ip = c.family == AF_INET6 ? "ip6" : "ip";
  const std::string& saddr = in ? c.remote : c.local;
  const std::string& daddr = in ? c.local : c.remote;
  const uint16_t sport = in ? c.remote_port : c.local_port;
  const uint16_t dport = in ? c.local_port : c.remote_port;
  return fmt::format(
      "add rule inet {} {} meta mark != {:#x} {} saddr {} tcp sport {} {} daddr {} tcp dport {} "
      "drop\n",
      t, chain, kLockMark, ip, saddr, sport, ip, daddr, dport);
}

void nft(const std::string& script, const std::string& what) {
  ToolResult r = run_tool({"nft", "-f", "-"}, script, "nftables");
  if (r.status != 0) fail("cannot {} with nft (status {}): {}", what, r.status, r.output);
}

// --- iptables: a chain per family that INPUT and OUTPUT jump to.

const char* ipt_tool(int family) {
  return family == AF_INET6 ? "ip6tables" : "iptables";
}

ToolResult ipt(int family, std::vector<std::string> args) {
  args.insert(args.begin(), {ipt_tool(family), "-w", "10"});
  return run_tool(args, "", "iptables", 20);
}

void ipt_check(int family, std::vector<std::string> args, const std::string& what) {
  ToolResult r = ipt(family, args);
  if (r.status != 0)
    fail("cannot {} with {} (status {}): {}", what, ipt_tool(family), r.status, r.output);
}

void ipt_add(const std::string& chain, const Connection& c) {
  const int f = c.family;
  if (ipt(f, {"-n", "-L", chain}).status != 0) ipt_check(f, {"-N", chain}, "make the lock chain");
  for (const char* hook : {"INPUT", "OUTPUT"})
    if (ipt(f, {"-C", hook, "-j", chain}).status != 0)
      ipt_check(f, {"-I", hook, "-j", chain}, "jump to the lock chain");
  for (bool in : {true, false}) {
    ipt_check(f,
              {"-A", chain, "-p", "tcp", "-s", in ? c.remote : c.local, "--sport",
               std::to_string(in ? c.remote_port : c.local_port), "-d", in ? c.local : c.remote,
               "--dport", std::to_string(in ? c.local_port : c.remote_port), "-m", "mark", "!",
               "--mark", fmt::format("{:#x}", kLockMark), "-j", "DROP"},
              fmt::format("lock connection {}", c.show()));
  }
}

// Quiet when there is no such chain; true when nothing of it is left.
bool ipt_lift(int family, const std::string& chain) {
  if (ipt(family, {"-n", "-L", chain}).status != 0) return true;
  for (const char* hook : {"INPUT", "OUTPUT"})
    for (int i = 0; i < 100 && ipt(family, {"-D", hook, "-j", chain}).status == 0; i++) {
    }
  ipt(family, {"-F", chain});
  return ipt(family, {"-X", chain}).status == 0;
}

}  // namespace

LockMethod parse_lock_method(const std::string& word) {
  if (word == "iptables") return LockMethod::kIptables;
  if (word == "nftables") return LockMethod::kNftables;
  if (word == "skip") return LockMethod::kSkip;
  fail("bad network lock method '{}': use iptables, nftables or skip", word);
}

const char* lock_method_name(LockMethod m) {
  switch (m) {
    case LockMethod::kIptables:
      return "iptables";
    case LockMethod::kNftables:
      return "nftables";
    case LockMethod::kSkip:
      return "skip";
  }
  return "?";
}

std::string Connection::show() const {
  auto one = [&](const std::string& a, uint16_t p) {
    return family == AF_INET6 ? fmt::format("[{}]:{}", a, p) : fmt::format("{}:{}", a, p);
  };
  return one(local, local_port) + " -> " + one(remote, remote_port);
}

std::string NetworkLock::name() const {
  return table_name(root_);
}

void NetworkLock::add(const std::vector<Connection>& conns) {
  if (method_ == LockMethod::kSkip || conns.empty()) return;
  const std::string t = name();
  if (method_ == LockMethod::kNftables) {
    std::string script = nft_chains(t);
    for (const auto& c : conns) {
      script += nft_rule(t, "input", c, true);
      script += nft_rule(t, "output", c, false);
    }
    // One transaction: it makes all or nothing.
    nft(script, fmt::format("lock {} connection(s) (table inet {})", conns.size(), t));
    taken_ = true;
  } else {
    taken_ = true;  // from the first command: a half-made lock is lifted too
    for (const auto& c : conns) ipt_add(t, c);
  }
  for (const auto& c : conns)
    log::info("network lock ({}): {}", lock_method_name(method_), c.show());
}

void NetworkLock::lift() {
  if (!taken_) return;
  taken_ = false;
  try {
    lift_lock(method_, root_);
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());
  }
}

NetworkLock::~NetworkLock() {
  if (!kept_) lift();
}

void lift_lock(LockMethod method, pid_t root) {
  const std::string t = table_name(root);
  if (method == LockMethod::kNftables) {
    // Adding the table first makes the deletion quiet when there is none.
    ToolResult r =
        run_tool({"nft", "-f", "-"}, fmt::format("add table inet {0}\ndelete table inet {0}\n", t),
                 "nftables");
    if (r.status != 0)
      fail(
          "cannot lift the network lock (nft delete table inet {}): {}; the connections of "
          "tree {} stay blocked until it is deleted",
          t, r.output, root);
  } else if (method == LockMethod::kIptables) {
    for (int f : {AF_INET, AF_INET6})
      if (!ipt_lift(f, t))
        fail(
            "cannot lift the network lock ({} chain {}): delete it with {} -D INPUT -j {}; {} "
            "-D OUTPUT -j {}; {} -F {}; {} -X {}",
            ipt_tool(f), t, ipt_tool(f), t, ipt_tool(f), t, ipt_tool(f), t, ipt_tool(f), t);
  }
  log::info("network lock ({}) of tree {} lifted", lock_method_name(method), root);
}

std::string probe_nftables_lock() {
  try {
    Connection c{AF_INET, "127.0.0.1", "127.0.0.1", 1, 1};
    NetworkLock lock(LockMethod::kNftables, ::getpid());
    lock.add({c});
    lock.lift();
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace cryo::net
