// Images are untrusted: the planner's checks refuse inconsistent or hostile entries with one
// message naming the image and the field. Each case also passes a sound entry, so that a check
// that refuses everything fails here too.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <functional>
#include <initializer_list>
#include <string>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/strings.h"
#include "image/image.h"
#include "restore/validate.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kPage = 4096;

// Runs `f`, which must throw an Error whose message holds every word.
void expect_refused(const std::function<void()>& f, std::initializer_list<std::string> words) {
  try {
    f();
  } catch (const Error& e) {
    std::string m = e.what();
    for (const std::string& w : words) EXPECT_NE(m.find(w), std::string::npos) << m;
    return;
  }
  ADD_FAILURE() << "not refused (expected a message with " << *words.begin() << ")";
}

Limits limits() {
  Limits l;
  l.mmap_min_addr = 0x10000;
  l.max_map_count = 100;
  l.pipe_max_size = 1 << 20;
  l.nr_open = 1024;
  return l;
}

vma_entry* add_vma(mm_entry& mm, uint64_t start, uint64_t end,
                   uint32_t status = image::kVmaRegular | image::kVmaAnonPrivate) {
  vma_entry* v = mm.add_vmas();
  v->set_start(start);
  v->set_end(end);
  v->set_pgoff(0);
  v->set_shmid(0);
  v->set_prot(PROT_READ | PROT_WRITE);
  v->set_flags(MAP_PRIVATE | MAP_ANONYMOUS);
  v->set_status(status);
  v->set_fd(-1);
  return v;
}

mm_entry sound_mm() {
  mm_entry mm;
  for (auto f :
       {&mm_entry::set_mm_start_code, &mm_entry::set_mm_end_code, &mm_entry::set_mm_start_data,
        &mm_entry::set_mm_end_data, &mm_entry::set_mm_start_stack, &mm_entry::set_mm_start_brk,
        &mm_entry::set_mm_brk, &mm_entry::set_mm_arg_start, &mm_entry::set_mm_arg_end,
        &mm_entry::set_mm_env_start, &mm_entry::set_mm_env_end})
    (mm.*f)(0x400000);
  mm.set_exe_file_id(1);
  add_vma(mm, 0x400000, 0x402000, image::kVmaRegular | image::kVmaFilePrivate);
  add_vma(mm, 0x402000, 0x404000);  // adjacent: pages may span both
  add_vma(mm, 0x500000, 0x501000, image::kVmaRegular | image::kVmaAnonShared);
  add_vma(mm, 0x7ffff7fc0000, 0x7ffff7fc2000, image::kVmaRegular | image::kVmaVdso);
  add_vma(mm, kVsyscallStart, kVsyscallStart + kPage, image::kVmaVsyscall);
  return mm;
}

TEST(CheckMm, SoundLayoutPasses) {
  EXPECT_NO_THROW(check_mm(sound_mm(), "mm-7.img", limits()));
}

TEST(CheckMm, UnalignedMapping) {
  mm_entry mm = sound_mm();
  mm.mutable_vmas(1)->set_end(0x403800);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "vmas[1]", "page aligned"});
}

TEST(CheckMm, EmptyOrReversedMapping) {
  mm_entry mm = sound_mm();
  mm.mutable_vmas(1)->set_end(0x402000);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "vmas[1]", "start must be below end"});
}

TEST(CheckMm, MappingAtZeroIsBelowMmapMinAddr) {
  mm_entry mm;
  add_vma(mm, 0, kPage);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "vmas[0]", "vm.mmap_min_addr", "0x10000"});
  Limits low = limits();
  low.mmap_min_addr = 0;  // allowed where the machine allows it
  EXPECT_NO_THROW(check_mm(mm, "mm-7.img", low));
}

TEST(CheckMm, MappingBeyondUserSpace) {
  mm_entry mm;
  add_vma(mm, 0x7ffffffff000, 0x800000000000);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "vmas[0]", "user address space"});
}

TEST(CheckMm, VsyscallOnlyAtItsPlace) {
  mm_entry mm;
  add_vma(mm, 0x7ffff0000000, 0x7ffff0001000, image::kVmaVsyscall);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "vsyscall"});
}

TEST(CheckMm, OverlappingMappings) {
  mm_entry mm = sound_mm();
  mm.mutable_vmas(1)->set_start(0x401000);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "vmas[1]", "overlaps vmas[0]"});
}

TEST(CheckMm, UnsortedMappings) {
  mm_entry mm;
  add_vma(mm, 0x600000, 0x601000);
  add_vma(mm, 0x400000, 0x401000);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "vmas[1]"});
}

TEST(CheckMm, TooManyMappings) {
  mm_entry mm;
  for (uint64_t i = 0; i < 101; i++)
    add_vma(mm, 0x400000 + 2 * i * kPage, 0x401000 + 2 * i * kPage);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); },
                 {"mm-7.img", "101 mappings", "vm.max_map_count"});
}

TEST(CheckMm, FileOffsets) {
  mm_entry mm = sound_mm();
  mm.mutable_vmas(0)->set_pgoff(100);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "vmas[0]", "pgoff"});
  mm.mutable_vmas(0)->set_pgoff(~0ULL & ~(kPage - 1));
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "vmas[0]", "pgoff"});
}

TEST(CheckMm, FieldsAndAuxv) {
  mm_entry mm = sound_mm();
  mm.set_mm_brk(0x1000);  // below start_brk
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "mm_start_brk..mm_brk"});
  mm = sound_mm();
  mm.add_mm_saved_auxv(6);  // odd: a type without its value
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "mm_saved_auxv"});
  mm = sound_mm();
  for (int i = 0; i < 2000; i++) mm.add_mm_saved_auxv(0);
  expect_refused([&] { check_mm(mm, "mm-7.img", limits()); }, {"mm-7.img", "mm_saved_auxv"});
}

pagemap_entry run(uint64_t vaddr, uint32_t n) {
  pagemap_entry e;
  e.set_vaddr(vaddr);
  e.set_nr_pages(n);
  e.set_flags(image::kPePresent);
  return e;
}

TEST(CheckPageRuns, SoundRunsPassAndAreCounted) {
  mm_entry mm = sound_mm();
  // The second run spans the two adjacent private mappings.
  std::vector<pagemap_entry> runs{run(0x400000, 1), run(0x401000, 3)};
  EXPECT_EQ(check_page_runs(runs, "pagemap-7.img", &mm, kUserTop), 4u);
}

TEST(CheckPageRuns, OverlappingRunsShiftPages) {
  mm_entry mm = sound_mm();
  std::vector<pagemap_entry> runs{run(0x400000, 2), run(0x401000, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "entry 2", "overlaps"});
}

TEST(CheckPageRuns, UnsortedRuns) {
  mm_entry mm = sound_mm();
  std::vector<pagemap_entry> runs{run(0x402000, 1), run(0x400000, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "entry 2", "out of order"});
}

TEST(CheckPageRuns, PagesOutsideAnyMapping) {
  mm_entry mm = sound_mm();
  std::vector<pagemap_entry> runs{run(0x403000, 2)};  // the second page is past the mapping
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "entry 1", "page 0x404000", "private mapping"});
  runs = {run(0x300000, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "page 0x300000"});
}

TEST(CheckPageRuns, PagesInSharedOrSpecialMappings) {
  mm_entry mm = sound_mm();
  std::vector<pagemap_entry> runs{run(0x500000, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "private mapping"});
  runs = {run(0x7ffff7fc0000, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-7.img", &mm, kUserTop); },
                 {"pagemap-7.img", "private mapping"});
}

TEST(CheckPageRuns, CountsThatOverflowOrAreEmpty) {
  std::vector<pagemap_entry> runs{run(0xfffffffffffff000, 0xffffffff)};
  expect_refused([&] { check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kSharedObjectMax); },
                 {"pagemap-shmem-5.img", "reach past"});
  runs = {run(kSharedObjectMax - kPage, 2)};
  expect_refused([&] { check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kSharedObjectMax); },
                 {"pagemap-shmem-5.img", "reach past"});
  runs = {run(0, 0)};
  expect_refused([&] { check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kSharedObjectMax); },
                 {"pagemap-shmem-5.img", "nr_pages is 0"});
  runs = {run(100, 1)};
  expect_refused([&] { check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kSharedObjectMax); },
                 {"pagemap-shmem-5.img", "vaddr"});
  runs = {run(0, 1), run(kPage, 0xffffffff)};
  EXPECT_EQ(check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kSharedObjectMax),
            1ULL + 0xffffffffULL);
}

TEST(CheckPageRuns, ParentPagesOnlyWhereAChainIsRead) {
  std::vector<pagemap_entry> runs{run(0, 1), run(kPage, 2)};
  runs[0].set_flags(image::kPeParent);
  expect_refused([&] { check_page_runs(runs, "pagemap-shmem-5.img", nullptr, kUserTop); },
                 {"pagemap-shmem-5.img", "parent"});
  // In a task's pagemap they are taken, and not counted in its pages file.
  EXPECT_EQ(check_page_runs(runs, "pagemap-7.img", nullptr, kUserTop, true), 2u);
  runs[0].clear_flags();
  runs[0].set_in_parent(true);  // the old field says the same
  EXPECT_EQ(check_page_runs(runs, "pagemap-7.img", nullptr, kUserTop, true), 2u);
  // A lazy dump's pages left on the source (PE_LAZY alone) are not in the pages file either;
  // PE_LAZY with PE_PRESENT (CRIU's mark on pages a lazy restore may leave out) are.
  runs[1].set_flags(image::kPeLazy);
  EXPECT_EQ(check_page_runs(runs, "pagemap-7.img", nullptr, kUserTop, true), 0u);
  runs[1].set_flags(image::kPeLazy | image::kPePresent);
  EXPECT_EQ(check_page_runs(runs, "pagemap-7.img", nullptr, kUserTop, true), 2u);
}

TEST(CheckPagesSize, FileMustHoldExactlyTheListedPages) {
  EXPECT_NO_THROW(check_pages_size(3, 3 * kPage, "pages-1.img", "pagemap-7.img"));
  expect_refused([] { check_pages_size(3, 2 * kPage, "pages-1.img", "pagemap-7.img"); },
                 {"pages-1.img", "pagemap-7.img", "3 pages", "truncated"});
  expect_refused([] { check_pages_size(3, 4 * kPage, "pages-1.img", "pagemap-7.img"); },
                 {"pages-1.img"});
  // A count whose byte size overflows must not wrap around to the file's size.
  expect_refused([] { check_pages_size((1ULL << 52) + 1, kPage, "pages-1.img", "pagemap-7.img"); },
                 {"pages-1.img"});
}

fdinfo_entry fd(uint32_t num, uint32_t id) {
  fdinfo_entry e;
  e.set_id(id);
  e.set_flags(0);
  e.set_type(REG);
  e.set_fd(num);
  return e;
}

TEST(CheckFds, DuplicateFdNumbers) {
  EXPECT_NO_THROW(check_fds({fd(0, 1), fd(1, 1), fd(5, 2)}, "fdinfo-2.img", limits()));
  expect_refused(
      [] {
        check_fds({fd(0, 1), fd(3, 4), fd(3, 5)}, "fdinfo-2.img", limits());
      },
      {"fdinfo-2.img", "fd 3", "twice", "files 4 and 5"});
}

TEST(CheckFds, FdBeyondNrOpen) {
  expect_refused(
      [] {
        check_fds({fd(0, 1), fd(1024, 2)}, "fdinfo-2.img", limits());
      },
      {"fdinfo-2.img", "fd 1024", "fs.nr_open"});
}

file_entry reg_file(uint32_t id) {
  file_entry f;
  f.set_type(REG);
  f.set_id(id);
  reg_file_entry* r = f.mutable_reg();
  r->set_id(id);
  r->set_flags(0);
  r->set_pos(0);
  r->mutable_fown()->set_uid(0);
  r->mutable_fown()->set_euid(0);
  r->mutable_fown()->set_signum(0);
  r->mutable_fown()->set_pid_type(0);
  r->mutable_fown()->set_pid(0);
  r->set_name("/tmp/x");
  return f;
}

TEST(CheckFileEntry, EpollWatchesBeyondNrOpen) {
  file_entry f;
  f.set_type(EVENTPOLL);
  f.set_id(8);
  eventpoll_file_entry* ep = f.mutable_epfd();
  ep->set_id(8);
  ep->set_flags(0);
  *ep->mutable_fown() = reg_file(1).reg().fown();
  eventpoll_tfd_entry* t = ep->add_tfd();
  t->set_id(8);
  t->set_tfd(5);
  t->set_events(1);
  t->set_data(0);
  EXPECT_NO_THROW(check_file_entry(f, limits()));
  t->set_tfd(5000);
  expect_refused([&] { check_file_entry(f, limits()); },
                 {"files.img", "epoll file 8", "fd 5000", "fs.nr_open"});
}

TEST(CheckFileEntry, TypeNeedsItsPartWithTheSameId) {
  EXPECT_NO_THROW(check_file_entry(reg_file(3), limits()));
  file_entry f = reg_file(3);
  f.set_type(PIPE);
  expect_refused([&] { check_file_entry(f, limits()); }, {"files.img", "file 3", "PIPE", "'pipe'"});
  f = reg_file(3);
  f.mutable_reg()->set_id(4);
  expect_refused([&] { check_file_entry(f, limits()); }, {"files.img", "file 3", "'reg'", "id 4"});
}

creds_entry creds() {
  creds_entry c;
  c.set_uid(1000);
  c.set_gid(1000);
  c.set_euid(1000);
  c.set_egid(1000);
  c.set_suid(1000);
  c.set_sgid(1000);
  c.set_fsuid(1000);
  c.set_fsgid(1000);
  c.set_secbits(0);
  c.add_groups(1000);
  return c;
}

TEST(CheckCreds, MinusOneInEveryIdIsRefused) {
  EXPECT_NO_THROW(check_creds(creds(), "core-9.img"));
  using Set = void (creds_entry::*)(uint32_t);
  const std::pair<const char*, Set> fields[] = {
      {"creds.uid", &creds_entry::set_uid},     {"creds.gid", &creds_entry::set_gid},
      {"creds.euid", &creds_entry::set_euid},   {"creds.egid", &creds_entry::set_egid},
      {"creds.suid", &creds_entry::set_suid},   {"creds.sgid", &creds_entry::set_sgid},
      {"creds.fsuid", &creds_entry::set_fsuid}, {"creds.fsgid", &creds_entry::set_fsgid}};
  for (const auto& [name, set] : fields) {
    creds_entry c = creds();
    (c.*set)(0xffffffff);
    expect_refused([&] { check_creds(c, "core-9.img"); }, {"core-9.img", std::string(name) + " "});
  }
  creds_entry c = creds();
  c.add_groups(0xffffffff);
  expect_refused([&] { check_creds(c, "core-9.img"); }, {"core-9.img", "creds.groups[1]"});
}

TEST(CheckTaskCore, PersonalityMinusOne) {
  task_core_entry tc;
  tc.set_task_state(1);
  tc.set_exit_code(0);
  tc.set_personality(0);
  tc.set_blk_sigset(0);
  EXPECT_NO_THROW(check_task_core(tc, "core-9.img"));
  tc.set_personality(0xffffffff);
  expect_refused([&] { check_task_core(tc, "core-9.img"); }, {"core-9.img", "tc.personality"});
}

pipe_data_entry pipe_data(uint32_t bytes, uint32_t size) {
  pipe_data_entry e;
  e.set_pipe_id(77);
  e.set_bytes(bytes);
  if (size) e.set_size(size);
  return e;
}

TEST(CheckPipeData, DataMustFitThePipe) {
  EXPECT_NO_THROW(check_pipe_data(pipe_data(65536, 65536), "pipes-data.img", limits()));
  EXPECT_NO_THROW(check_pipe_data(pipe_data(65536, 0), "pipes-data.img", limits()));
  expect_refused([] { check_pipe_data(pipe_data(70000, 65536), "pipes-data.img", limits()); },
                 {"pipes-data.img", "pipe 77", "70000 bytes", "65536"});
  // Without a size, the pipe has the default 64 KiB.
  expect_refused([] { check_pipe_data(pipe_data(65537, 0), "fifo-data.img", limits()); },
                 {"fifo-data.img", "pipe 77"});
  expect_refused([] { check_pipe_data(pipe_data(10, 1 << 21), "pipes-data.img", limits()); },
                 {"pipes-data.img", "pipe 77", "pipe-max-size"});
}

TEST(CheckSocketQueue, BoundedByWhatCanBePutBack) {
  EXPECT_NO_THROW(check_socket_queue(5, {"a", "bc"}, "sk-queues.img"));
  std::vector<std::string> many(kSocketQueueMax / kSocketMsgOverhead + 1);
  expect_refused([&] { check_socket_queue(5, many, "sk-queues.img"); },
                 {"sk-queues.img", "unix socket 5"});
}

user_x86_regs_entry regs() {
  user_x86_regs_entry r;
  for (auto f : {&user_x86_regs_entry::set_r15,     &user_x86_regs_entry::set_r14,
                 &user_x86_regs_entry::set_r13,     &user_x86_regs_entry::set_r12,
                 &user_x86_regs_entry::set_bp,      &user_x86_regs_entry::set_bx,
                 &user_x86_regs_entry::set_r11,     &user_x86_regs_entry::set_r10,
                 &user_x86_regs_entry::set_r9,      &user_x86_regs_entry::set_r8,
                 &user_x86_regs_entry::set_ax,      &user_x86_regs_entry::set_cx,
                 &user_x86_regs_entry::set_dx,      &user_x86_regs_entry::set_si,
                 &user_x86_regs_entry::set_di,      &user_x86_regs_entry::set_orig_ax,
                 &user_x86_regs_entry::set_fs_base, &user_x86_regs_entry::set_gs_base,
                 &user_x86_regs_entry::set_ds,      &user_x86_regs_entry::set_es,
                 &user_x86_regs_entry::set_fs,      &user_x86_regs_entry::set_gs})
    (r.*f)(0);
  r.set_ip(0x401000);
  r.set_sp(0x7ffffffde000);
  r.set_flags(0x246);
  r.set_cs(0x33);
  r.set_ss(0x2b);
  return r;
}

TEST(CheckRegs, RunnableRegistersPass) {
  EXPECT_NO_THROW(arch::check_regs_image(regs(), "core-9.img"));
}

TEST(CheckRegs, InstructionPointer) {
  user_x86_regs_entry r = regs();
  r.set_ip(0);
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); }, {"core-9.img", "gpregs.ip"});
  r.set_ip(0x0000800000000000);  // bit 47 set, 63..48 clear
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); },
                 {"core-9.img", "gpregs.ip", "canonical"});
  r.set_ip(0xffffffff81000000);  // canonical, but the kernel's
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); },
                 {"core-9.img", "gpregs.ip", "user space"});
}

TEST(CheckRegs, StackPointerTrapFlagSelectors) {
  user_x86_regs_entry r = regs();
  r.set_sp(0);
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); }, {"core-9.img", "gpregs.sp"});
  r = regs();
  r.set_flags(0x346);
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); },
                 {"core-9.img", "gpregs.flags", "TF"});
  r = regs();
  r.set_cs(0x23);  // the 32-bit selector
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); }, {"core-9.img", "gpregs.cs"});
  r = regs();
  r.set_fs_base(0xffff800000000000);
  expect_refused([&] { arch::check_regs_image(r, "core-9.img"); },
                 {"core-9.img", "gpregs.fs_base"});
}

user_x86_fpregs_entry fpregs() {
  user_x86_fpregs_entry f;
  f.set_cwd(0x37f);
  f.set_swd(0);
  f.set_twd(0);
  f.set_fop(0);
  f.set_rip(0);
  f.set_rdp(0);
  f.set_mxcsr(0x1f80);
  f.set_mxcsr_mask(0xffff);
  f.mutable_st_space()->Resize(32, 0);
  f.mutable_xmm_space()->Resize(64, 0);
  f.mutable_padding()->Resize(24, 0);
  auto* x = f.mutable_xsave();
  x->set_xstate_bv(0x7);  // x87, SSE, AVX
  x->mutable_ymmh_space()->Resize(64, 0);
  return f;
}

TEST(CheckFpregs, SizesOfCriusFormat) {
  EXPECT_NO_THROW(arch::check_fpregs_image(fpregs(), 0x7, "core-9.img"));
  user_x86_fpregs_entry f = fpregs();
  f.mutable_st_space()->Resize(31, 0);
  expect_refused([&] { arch::check_fpregs_image(f, 0x7, "core-9.img"); },
                 {"core-9.img", "fpregs.st_space", "31", "32"});
  f = fpregs();
  f.mutable_xmm_space()->Resize(65, 0);
  expect_refused([&] { arch::check_fpregs_image(f, 0x7, "core-9.img"); },
                 {"core-9.img", "fpregs.xmm_space"});
  f = fpregs();
  f.mutable_xsave()->mutable_ymmh_space()->Resize(32, 0);
  expect_refused([&] { arch::check_fpregs_image(f, 0x7, "core-9.img"); },
                 {"core-9.img", "fpregs.xsave.ymmh_space", "64"});
  f = fpregs();
  f.mutable_xsave()->mutable_zmm_upper()->Resize(3, 0);
  expect_refused([&] { arch::check_fpregs_image(f, 0xe7, "core-9.img"); },
                 {"core-9.img", "fpregs.xsave.zmm_upper"});
}

TEST(CheckFpregs, ComponentsInUseMustBeThereAndOnThisCpu) {
  user_x86_fpregs_entry f = fpregs();
  f.mutable_xsave()->clear_ymmh_space();
  expect_refused([&] { arch::check_fpregs_image(f, 0x7, "core-9.img"); },
                 {"core-9.img", "xstate_bv", "ymmh_space"});
  expect_refused([&] { arch::check_fpregs_image(fpregs(), 0x3, "core-9.img"); },
                 {"core-9.img", "xstate_bv", "this CPU"});
}

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(printable("/tmp/plain file"), "/tmp/plain file");
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable(std::string("x\0y\n\t\x7f\\", 7)), "x\\x00y\\n\\t\\x7f\\\\");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\xc2\\x9b31m");                      // a C1 control (CSI) does not
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");  // nor do stray bytes
}

TEST(FileKind, Names) {
  EXPECT_STREQ(file_kind(S_IFIFO | 0644), "a FIFO");
  EXPECT_STREQ(file_kind(S_IFREG | 0644), "a regular file");
}

}  // namespace
}  // namespace cryo::restore
