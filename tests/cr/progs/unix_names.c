/* unix_names: how unix sockets are named. A datagram socket bound by a relative name from a
 * subdirectory (the name stays relative, the socket stays reachable at its file); an unbound,
 * unconnected datagram socket; a bound datagram "server" with messages queued from unconnected
 * senders; a listener whose file has mode 0640 and owner 1234:5678; a datagram socket whose
 * file was deleted (a message queued, and a client connected to it before); a listener whose
 * directory was removed; sockets whose paths now hold a FIFO and a regular file; two sockets
 * bound to one path in turn (the first one's file deleted). After restore: names, files, modes,
 * owners, queued messages, connections and what sits at each path are as they were.
 */
#include "common.h"
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static socklen_t addr_of(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	char path[2300];
	if (name[0] == '/' || strchr(name, ':'))
		snprintf(path, sizeof path, "%s", name);
	else
		cr_path(path, sizeof path, name);
	if (strlen(path) >= sizeof a->sun_path)
		cr_fail("setup: path too long for a unix socket: %s", path);
	memcpy(a->sun_path, path, strnlen(path, sizeof a->sun_path - 1));
	return sizeof *a;
}

static int bound(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = addr_of(&a, name);
	int s = socket(AF_UNIX, type, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, l) < 0)
		cr_fail("setup: bind %s: %s", name, strerror(errno));
	return s;
}

static void expect_msg(int fd, const char *want, const char *what)
{
	char buf[128] = { 0 };
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, strlen(want)))
		cr_fail("%s: expected \"%s\" got %zd bytes \"%s\" (%s)", what, want, n, n > 0 ? buf : "",
			n < 0 ? strerror(errno) : "");
}

static void expect_name(int fd, const char *want, const char *what)
{
	struct sockaddr_un a;
	socklen_t l = sizeof a;
	memset(&a, 0, sizeof a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
		cr_fail("%s: getsockname: %s", what, strerror(errno));
		return;
	}
	char got[sizeof a.sun_path + 1] = { 0 };
	if (l > offsetof(struct sockaddr_un, sun_path))
		memcpy(got, a.sun_path, l - offsetof(struct sockaddr_un, sun_path));
	char full[2300];
	if (want[0] && want[0] != '/' && strcmp(want, "rel.sock"))
		cr_path(full, sizeof full, want);
	else
		snprintf(full, sizeof full, "%s", want);
	CHECK_S(what, full, got);
}

static void expect_kind(const char *name, mode_t kind, const char *what)
{
	char path[2300];
	struct stat st;
	cr_path(path, sizeof path, name);
	if (lstat(path, &st) < 0) {
		if (kind)
			cr_fail("%s: %s is gone: %s", what, name, strerror(errno));
		return;
	}
	if (!kind)
		cr_fail("%s: %s exists (mode %o), it should not", what, name, st.st_mode);
	else
		CHECK_X(what, kind, st.st_mode & S_IFMT);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	char path[2300];
	struct sockaddr_un a;
	socklen_t l;

	/* a relative name, bound from WORKDIR/sub (the working directory stays WORKDIR/sub) */
	cr_path(path, sizeof path, "sub");
	if (mkdir(path, 0755) < 0 || chdir(path) < 0)
		cr_fail("setup: sub: %s", strerror(errno));
	int rel = socket(AF_UNIX, SOCK_DGRAM, 0);
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	strcpy(a.sun_path, "rel.sock");
	if (bind(rel, (struct sockaddr *)&a, sizeof a) < 0)
		cr_fail("setup: bind rel.sock: %s", strerror(errno));
	int relc = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sendto(relc, "to-rel", 6, 0, (struct sockaddr *)&a, sizeof a) != 6)
		cr_fail("setup: send to rel.sock: %s", strerror(errno));

	/* unbound, unconnected */
	int lone = socket(AF_UNIX, SOCK_DGRAM, 0);

	/* a datagram server with messages from two unconnected senders */
	int srv = bound(SOCK_DGRAM, "srv.sock");
	int s1 = socket(AF_UNIX, SOCK_DGRAM, 0), s2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = addr_of(&a, "srv.sock");
	if (sendto(s1, "from-s1", 7, 0, (struct sockaddr *)&a, l) != 7 ||
	    sendto(s2, "from-s2", 7, 0, (struct sockaddr *)&a, l) != 7 ||
	    sendto(s1, "again-s1", 8, 0, (struct sockaddr *)&a, l) != 8)
		cr_fail("setup: send to srv.sock: %s", strerror(errno));

	/* mode and owner of a listener's file */
	int perm = bound(SOCK_STREAM, "perm.sock");
	cr_path(path, sizeof path, "perm.sock");
	if (listen(perm, 4) < 0 || chmod(path, 0640) < 0 || chown(path, 1234, 5678) < 0)
		cr_fail("setup: perm.sock: %s", strerror(errno));

	/* deleted, with a message queued and a client connected */
	int del = bound(SOCK_DGRAM, "del.sock");
	int delc = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = addr_of(&a, "del.sock");
	if (connect(delc, (struct sockaddr *)&a, l) < 0 || send(delc, "to-del", 6, 0) != 6)
		cr_fail("setup: del.sock client: %s", strerror(errno));
	cr_path(path, sizeof path, "del.sock");
	unlink(path);

	/* its directory removed */
	cr_path(path, sizeof path, "gone");
	mkdir(path, 0700);
	int gone = bound(SOCK_STREAM, "gone/x.sock");
	if (listen(gone, 2) < 0)
		cr_fail("setup: listen gone/x.sock: %s", strerror(errno));
	cr_path(path, sizeof path, "gone/x.sock");
	unlink(path);
	cr_path(path, sizeof path, "gone");
	if (rmdir(path) < 0)
		cr_fail("setup: rmdir gone: %s", strerror(errno));

	/* a FIFO and a regular file where sockets were bound */
	int fifo_sk = bound(SOCK_DGRAM, "fifo.sock");
	cr_path(path, sizeof path, "fifo.sock");
	if (unlink(path) < 0 || mkfifo(path, 0600) < 0)
		cr_fail("setup: fifo.sock: %s", strerror(errno));
	int file_sk = bound(SOCK_STREAM, "file.sock");
	cr_path(path, sizeof path, "file.sock");
	unlink(path);
	int f = open(path, O_WRONLY | O_CREAT, 0644);
	if (f < 0 || write(f, "file", 4) != 4)
		cr_fail("setup: file.sock: %s", strerror(errno));
	close(f);

	/* one path, two sockets in turn */
	int first = bound(SOCK_DGRAM, "twice.sock");
	cr_path(path, sizeof path, "twice.sock");
	unlink(path);
	int second = bound(SOCK_DGRAM, "twice.sock");

	cr_ready();
	cr_wait_go();

	/* relative */
	expect_name(rel, "rel.sock", "name of the socket bound by a relative name");
	expect_msg(rel, "to-rel", "message queued on rel.sock");
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	strcpy(a.sun_path, "rel.sock");
	if (sendto(relc, "new-rel", 7, 0, (struct sockaddr *)&a, sizeof a) != 7)
		cr_fail("send to rel.sock after restore: %s", strerror(errno));
	expect_msg(rel, "new-rel", "message sent to rel.sock after restore");
	expect_kind("sub/rel.sock", S_IFSOCK, "file of rel.sock");

	/* unbound */
	expect_name(lone, "", "name of the unbound socket");
	CHECK_I("type of the unbound socket", SOCK_DGRAM, ({
		int t = -1;
		socklen_t tl = sizeof t;
		getsockopt(lone, SOL_SOCKET, SO_TYPE, &t, &tl);
		t;
	}));

	/* the datagram server */
	expect_name(srv, "srv.sock", "name of srv.sock");
	expect_msg(srv, "from-s1", "first message on srv.sock");
	expect_msg(srv, "from-s2", "second message on srv.sock");
	expect_msg(srv, "again-s1", "third message on srv.sock");
	l = addr_of(&a, "srv.sock");
	if (sendto(s2, "later", 5, 0, (struct sockaddr *)&a, l) != 5)
		cr_fail("send to srv.sock after restore: %s", strerror(errno));
	expect_msg(srv, "later", "message sent to srv.sock after restore");

	/* mode and owner */
	struct stat st;
	cr_path(path, sizeof path, "perm.sock");
	if (stat(path, &st) < 0) {
		cr_fail("perm.sock: %s", strerror(errno));
	} else {
		CHECK_X("mode of perm.sock", S_IFSOCK | 0640, st.st_mode);
		CHECK_U("owner of perm.sock", 1234, st.st_uid);
		CHECK_U("group of perm.sock", 5678, st.st_gid);
	}
	int pc = socket(AF_UNIX, SOCK_STREAM, 0);
	l = addr_of(&a, "perm.sock");
	if (connect(pc, (struct sockaddr *)&a, l) < 0)
		cr_fail("connect to perm.sock after restore: %s", strerror(errno));
	fcntl(perm, F_SETFL, O_NONBLOCK);
	int pa = accept(perm, NULL, NULL);
	if (pa < 0)
		cr_fail("accept on perm.sock after restore: %s", strerror(errno));

	/* deleted */
	expect_name(del, "del.sock", "name of the socket whose file was deleted");
	expect_kind("del.sock", 0, "path of the deleted del.sock");
	expect_msg(del, "to-del", "message queued on the deleted socket");
	if (send(delc, "del-later", 9, 0) != 9)
		cr_fail("send from del.sock's client after restore: %s", strerror(errno));
	expect_msg(del, "del-later", "message from del.sock's client after restore");

	/* directory removed */
	expect_name(gone, "gone/x.sock", "name of the socket whose directory was removed");
	expect_kind("gone", 0, "the removed directory");
	fcntl(gone, F_SETFL, O_NONBLOCK);
	CHECK_I("accept on gone/x.sock (none waiting)", -1, accept(gone, NULL, NULL) < 0 && errno == EAGAIN ? -1 : 0);
	int acc = 0;
	socklen_t al = sizeof acc;
	getsockopt(gone, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al);
	CHECK_I("gone/x.sock still listens", 1, acc);

	/* FIFO and file */
	expect_name(fifo_sk, "fifo.sock", "name of the socket whose path holds a FIFO");
	expect_kind("fifo.sock", S_IFIFO, "the FIFO at fifo.sock");
	expect_name(file_sk, "file.sock", "name of the socket whose path holds a file");
	expect_kind("file.sock", S_IFREG, "the file at file.sock");
	cr_path(path, sizeof path, "file.sock");
	char fb[8] = { 0 };
	f = open(path, O_RDONLY);
	if (f < 0 || read(f, fb, sizeof fb - 1) != 4)
		cr_fail("file.sock content: %s", strerror(errno));
	CHECK_S("content of the file at file.sock", "file", fb);

	/* twice */
	expect_name(first, "twice.sock", "name of the first socket bound to twice.sock");
	expect_name(second, "twice.sock", "name of the second socket bound to twice.sock");
	int tc = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = addr_of(&a, "twice.sock");
	if (sendto(tc, "who", 3, 0, (struct sockaddr *)&a, l) != 3)
		cr_fail("send to twice.sock after restore: %s", strerror(errno));
	expect_msg(second, "who", "message to twice.sock reaches the second socket");
	char b;
	CHECK_I("the first socket gets nothing", -1, recv(first, &b, 1, MSG_DONTWAIT));
	cr_finish();
}
