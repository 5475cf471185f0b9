// The kinds of open files a restore knows, twins of dump/file_kind.h. Each kind checks, while
// the restore is planned, what its files need on this machine; makes cryo's own open file
// for a files.img entry (FileSet hands it to every task holding it); and may finish a task's
// files once all its fds are in place (epoll registrations). Adding a kind: a class in
// restore/KIND.cc and one line in the registry (file_kind.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "image/fdinfo.h"
#include "infect/fd_transfer.h"
#include "restore/plan.h"

namespace cryo::restore {

class FileSet;

class FileKind {
 public:
  virtual ~FileKind() = default;
  virtual fd_types type() const = 0;
  // While planning: checks what fd `fd` of task `pid`, on file `f`, needs here (the file at
  // its path, the terminal in tty-info.img, ...); may note what the plan must know.
  virtual void check(Plan& /*plan*/, const file_entry& /*f*/, pid_t /*pid*/, int /*fd*/) const {}
  // cryo's own open file for `f`, made once per open file.
  virtual Fd open(const file_entry& f, FileSet& files) = 0;
  // Files (ids) cryo must still hold when `f` is made or settled (a socket's peer, the files
  // an epoll watches under closed numbers): they are let go only after `f` is.
  virtual void needs(const file_entry& /*f*/, const Plan& /*plan*/,
                     std::vector<uint32_t>* /*out*/) {}
  // An fd number the task needs free for a while when settling `f`: the task's pidfd on cryo
  // is kept above it. 0 when none.
  virtual uint64_t needs_free(const file_entry& /*f*/) const { return 0; }
  // True when `f` must be opened after the task's other fds are in place (a /proc file
  // about the task's own fds).
  virtual bool after_others(const file_entry& /*f*/) const { return false; }
  // Once every fd of task `t` is in place: what this kind must do through those fds.
  virtual void settle(RemoteTask& /*rt*/, const TaskPlan& /*t*/, const fdinfo_entry& /*fdi*/,
                      FdInstaller& /*installer*/, FileSet& /*files*/) {}
  // The restore succeeded: what the kind made for it stays (else it goes with the kind).
  virtual void keep() {}
};

// Every kind, by files.img type.
using FileKinds = std::map<int, std::unique_ptr<FileKind>>;
FileKinds make_file_kinds();

}  // namespace cryo::restore
