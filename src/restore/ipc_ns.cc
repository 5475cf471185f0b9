#include "restore/ipc_ns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/ipc_var.h"
#include "kernel/namespace.h"

namespace cryo::restore {
namespace {

// Objects of a namespace: refused until cryo restores them (CRIU's image names).
constexpr const char* kObjectImages[] = {"ipcns-shm-{}.img", "ipcns-sem-{}.img",
                                         "ipcns-msg-{}.img"};

void write_sysctl(const char* path, const std::string& value) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open {} to restore an IPC namespace's settings", path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    fail_sys("cannot write \"{}\" to {} (an IPC namespace's setting)", value, path);
}

}  // namespace

IpcNamespace::IpcNamespace(const std::string& dir, uint32_t id) : id_(id) {
  const std::string name = fmt::format("ipcns-var-{}.img", id);
  image::read_one(dir, name, image::magic::kIpcVar, vars_);
  if (vars_.sem_ctls_size() != image::kSemCtls)
    fail("image {}: {} kernel.sem values, not {}: corrupt or edited images", name,
         vars_.sem_ctls_size(), image::kSemCtls);
  for (const char* object : kObjectImages) {
    const std::string img = fmt::format(fmt::runtime(object), id);
    if (image::exists(dir, img))
      fail("image {}: SysV objects in an IPC namespace are not supported yet", img);
  }
}

void IpcNamespace::fill(pid_t pid) const {
  kernel::in_namespace(fmt::format("/proc/{}/ns/ipc", pid), CLONE_NEWIPC, [&] {
    std::string sem;
    for (uint32_t v : vars_.sem_ctls()) sem += fmt::format("{}{}", sem.empty() ? "" : " ", v);
    write_sysctl(image::kSemSysctl, sem);
    for (const image::IpcSysctl& s : image::kIpcSysctls)
      if (s.has(vars_)) write_sysctl(s.path, std::to_string(s.get(vars_)));
  });
  log::debug("task {}: IPC namespace {} has its settings", pid, id_);
}

}  // namespace cryo::restore
