/* pty: a pseudo-terminal pair held inside the tree, as script(1) or an ssh server session
 * holds one. The root holds the master; its child leads a new session with the slave as
 * controlling terminal (and a second, non-blocking open file on it); the grandchild is in
 * its own group, the terminal's foreground group. The slave is in raw mode with its own
 * control characters and speeds and a window size. Bytes written to the master and not yet
 * read by the slave, and bytes written to the slave and not yet read by the master, wait in
 * the kernel during the dump. After restore: the same pty index, the slave is the session's
 * controlling terminal with the same foreground group, the same attributes and window size,
 * the queued bytes arrive byte for byte in both directions, and new bytes still flow.
 * A second pair stays in canonical mode with echo: a complete line, a line ended by the EOF
 * character and a partial line wait for the child, their echo for the root. After restore
 * the child reads the same two lines and the partial one only once it is completed, and the
 * echo equals what a fresh pty with the same settings echoes for the same input.
 * A third pair is in packet mode, locked, with an exclusive slave and output waiting for the
 * master: all three modes hold after restore and the output comes as one data packet.
 */
#include "common.h"
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

static char pts_name[64];
static struct termios want_tio;
static const struct winsize want_ws = { .ws_row = 37, .ws_col = 123, .ws_xpixel = 5, .ws_ypixel = 7 };
/* Bytes a line discipline would act on if they were processed again: CR, NUL, ^C, DEL, ^D. */
static const char to_slave[] = "queued-input\r\n\0\003\177\033[A^D\004-end";
static const char to_master[] = "queued-output\n\r\0\377\004\021\023tail";
#define TO_SLAVE_LEN (sizeof to_slave - 1)
static char cooked_name[64];
static char packet_name[64];
static const char packet_out[] = "packet-data";
static const char cooked_in[] = "line one\rabc\004partial";
#define TO_MASTER_LEN (sizeof to_master - 1)

/* Reads exactly n bytes from fd within 5 s; returns how many arrived. */
static size_t read_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static void expect_bytes(const char *who, int fd, const char *want, size_t n)
{
	char buf[256];
	size_t got = read_exact(fd, buf, n);
	if (got != n) {
		cr_fail("%s: %zu of %zu queued bytes arrived", who, got, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (buf[i] != want[i]) {
			cr_fail("%s: byte %zu is 0x%02x, expected 0x%02x", who, i,
				(unsigned char)buf[i], (unsigned char)want[i]);
			return;
		}
}

/* More than the line discipline's 4095-byte buffer, queued after the small messages. */
#define BIG_IN 6000
#define BIG_OUT 5000
static char big_byte(size_t i, int seed) { return (char)('A' + (i * 7 + (size_t)seed) % 26); }

static int write_big(int fd, size_t n, int seed)
{
	char buf[BIG_IN];
	for (size_t i = 0; i < n; i++)
		buf[i] = big_byte(i, seed);
	return cr_write_all(fd, buf, n);
}

static void expect_big(const char *who, int fd, size_t n, int seed)
{
	char buf[BIG_IN];
	size_t got = read_exact(fd, buf, n);
	if (got != n) {
		cr_fail("%s: %zu of %zu queued bytes arrived", who, got, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (buf[i] != big_byte(i, seed)) {
			cr_fail("%s: byte %zu is 0x%02x", who, i, (unsigned char)buf[i]);
			return;
		}
}

static void expect_nothing_more(const char *who, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 200) > 0 && (p.revents & POLLIN)) {
		char buf[64];
		ssize_t r = read(fd, buf, sizeof buf);
		cr_fail("%s: %zd more bytes than were queued (first 0x%02x)", who, r,
			r > 0 ? (unsigned char)buf[0] : 0);
	}
}

static void check_termios(const char *who, int fd)
{
	struct termios t;
	struct winsize ws;
	if (tcgetattr(fd, &t) < 0) {
		cr_fail("%s: tcgetattr: %s", who, strerror(errno));
		return;
	}
	CHECK_X("c_iflag", want_tio.c_iflag, t.c_iflag);
	CHECK_X("c_oflag", want_tio.c_oflag, t.c_oflag);
	CHECK_X("c_cflag", want_tio.c_cflag, t.c_cflag);
	CHECK_X("c_lflag", want_tio.c_lflag, t.c_lflag);
	CHECK_U("c_line", want_tio.c_line, t.c_line);
	for (int i = 0; i < NCCS; i++)
		if (want_tio.c_cc[i] != t.c_cc[i])
			cr_fail("%s: c_cc[%d] is %u, expected %u", who, i, t.c_cc[i], want_tio.c_cc[i]);
	CHECK_U("input speed", B57600, cfgetispeed(&t));
	CHECK_U("output speed", B57600, cfgetospeed(&t));
	if (ioctl(fd, TIOCGWINSZ, &ws) < 0) {
		cr_fail("%s: TIOCGWINSZ: %s", who, strerror(errno));
		return;
	}
	CHECK_U("ws_row", want_ws.ws_row, ws.ws_row);
	CHECK_U("ws_col", want_ws.ws_col, ws.ws_col);
	CHECK_U("ws_xpixel", want_ws.ws_xpixel, ws.ws_xpixel);
	CHECK_U("ws_ypixel", want_ws.ws_ypixel, ws.ws_ypixel);
}

/* /dev/tty opens our controlling terminal: the slave, of this session. */
static void check_dev_tty(const char *who, int slave)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		cr_fail("%s: open /dev/tty: %s (no controlling terminal)", who, strerror(errno));
		return;
	}
	if (tcgetsid(fd) != getsid(0) || tcgetsid(fd) != tcgetsid(slave))
		cr_fail("%s: /dev/tty belongs to session %d, the slave to %d, we are in %d", who,
			(int)tcgetsid(fd), (int)tcgetsid(slave), (int)getsid(0));
	close(fd);
}

/* The canonical pair, from the child's side: whole lines only. */
static void check_cooked(int c)
{
	char buf[256];
	struct pollfd p = { .fd = c, .events = POLLIN };
	const char *lines[] = { "line one\n", "abc" };
	for (int i = 0; i < 2; i++) {
		ssize_t r = poll(&p, 1, 5000) > 0 ? read(c, buf, sizeof buf - 1) : -1;
		buf[r > 0 ? r : 0] = 0;
		if (r < 0)
			cr_fail("canonical line %d: nothing to read: %s", i + 1, strerror(errno));
		else
			CHECK_S("canonical line", lines[i], buf);
	}
	if (poll(&p, 1, 300) != 0)
		cr_fail("canonical: the partial line is readable before its end");
	kill(getppid(), SIGUSR2); /* the root may complete the line now */
	ssize_t r = poll(&p, 1, 5000) > 0 ? read(c, buf, sizeof buf - 1) : -1;
	buf[r > 0 ? r : 0] = 0;
	CHECK_S("canonical completed line", "partial end\n", buf);
}

/* Everything fd has to read, until it stays quiet for 300 ms. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (got < cap && poll(&p, 1, 300) > 0) {
		ssize_t r = read(fd, buf + got, cap - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* The echo a fresh pty with the cooked pair's settings gives for the same input. */
static size_t reference_echo(int cooked_master, char *buf, size_t cap)
{
	struct termios t;
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	char name[64];
	if (m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, name, sizeof name))
		return 0;
	int s = open(name, O_RDWR | O_NOCTTY);
	tcgetattr(cooked_master, &t);
	tcsetattr(s, TCSANOW, &t);
	cr_write_all(m, cooked_in, sizeof cooked_in - 1);
	size_t n = read_all(m, buf, cap);
	close(s);
	close(m);
	return n;
}

static void check_cooked_echo(int cm)
{
	char want[512], got[512];
	size_t nw = reference_echo(cm, want, sizeof want);
	size_t ng = read_all(cm, got, sizeof got);
	if (nw == 0)
		cr_fail("canonical: the reference pty echoed nothing");
	if (nw != ng || memcmp(want, got, nw) != 0) {
		char a[1100], b[1100];
		size_t i;
		for (i = 0; i < nw && i * 2 + 2 < sizeof a; i++)
			sprintf(a + i * 2, "%02x", (unsigned char)want[i]);
		a[i * 2] = 0;
		for (i = 0; i < ng && i * 2 + 2 < sizeof b; i++)
			sprintf(b + i * 2, "%02x", (unsigned char)got[i]);
		b[i * 2] = 0;
		cr_fail("canonical: echo queued for the master is %s, a fresh pty echoes %s", b, a);
	}
}

static int grandchild(int s)
{
	setpgid(0, 0);
	while (tcgetpgrp(s) != getpid())
		cr_sleep_ms(5);
	if (cr_write_all(s, to_master, TO_MASTER_LEN) < 0 || write_big(s, BIG_OUT, 2) < 0)
		cr_fail("setup: write to the slave: %s", strerror(errno));
	cr_ready_named("ready-gc");
	cr_wait_go();

	CHECK_I("grandchild: tcgetpgrp (foreground group)", getpid(), tcgetpgrp(s));
	CHECK_I("grandchild: tcgetsid", getppid(), tcgetsid(s));
	CHECK_I("grandchild: getsid", getppid(), getsid(0));
	check_dev_tty("grandchild", s);
	check_termios("grandchild", s);
	expect_bytes("slave input queued before the dump", s, to_slave, TO_SLAVE_LEN);
	expect_big("slave input past the line buffer", s, BIG_IN, 1);
	expect_nothing_more("slave input", s);
	if (cr_write_all(s, "new-out", 7) < 0)
		cr_fail("write new bytes to the slave: %s", strerror(errno));
	expect_bytes("new slave input", s, "new-in", 6);
	return cr_nfails ? 1 : 0;
}

static int child(int m)
{
	close(m);
	signal(SIGTTOU, SIG_IGN);
	if (setsid() < 0)
		cr_fail("setup: setsid: %s", strerror(errno));
	int s = open(pts_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
		cr_fail("setup: %s as controlling terminal: %s", pts_name, strerror(errno));
	struct termios t;
	tcgetattr(s, &t);
	cfmakeraw(&t);
	t.c_iflag |= IGNPAR;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	t.c_cc[VINTR] = 0x18;
	t.c_cc[VERASE] = 0x08;
	t.c_cc[VEOF] = 0x05;
	cfsetspeed(&t, B57600);
	if (tcsetattr(s, TCSANOW, &t) < 0 || ioctl(s, TIOCSWINSZ, &want_ws) < 0)
		cr_fail("setup: terminal attributes: %s", strerror(errno));
	tcgetattr(s, &want_tio);
	/* A second open file on the slave, with its own flags. */
	int s2 = open(pts_name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (s2 < 0)
		cr_fail("setup: second open of %s: %s", pts_name, strerror(errno));
	int c = open(cooked_name, O_RDWR | O_NOCTTY);
	if (c < 0)
		cr_fail("setup: open %s: %s", cooked_name, strerror(errno));
	int ps = open(packet_name, O_RDWR | O_NOCTTY);
	struct termios pt;
	if (ps < 0 || tcgetattr(ps, &pt) < 0)
		cr_fail("setup: open %s: %s", packet_name, strerror(errno));
	cfmakeraw(&pt);
	if (tcsetattr(ps, TCSANOW, &pt) < 0 || ioctl(ps, TIOCEXCL) < 0 ||
	    cr_write_all(ps, packet_out, sizeof packet_out - 1) < 0)
		cr_fail("setup: packet-mode pair: %s", strerror(errno));
	pid_t gc = fork();
	if (gc == 0)
		_exit(grandchild(s));
	setpgid(gc, gc);
	if (tcsetpgrp(s, gc) < 0)
		cr_fail("setup: tcsetpgrp: %s", strerror(errno));
	cr_ready_named("ready-child");
	cr_wait_go();

	CHECK_I("child: getsid", getpid(), getsid(0));
	CHECK_I("child: tcgetsid", getpid(), tcgetsid(s));
	CHECK_I("child: tcgetpgrp (foreground group)", gc, tcgetpgrp(s));
	check_dev_tty("child", s);
	struct stat st;
	char buf[256];
	if (fstat(s, &st) == 0) {
		/* tty_nr in /proc/self/stat: the controlling terminal's device number. */
		snprintf(buf, sizeof buf, "/proc/%d/stat", (int)getpid());
		char stat[1024];
		ssize_t n = cr_read_file(buf, stat, sizeof stat - 1);
		int tty_nr = -1;
		if (n > 0) {
			stat[n] = 0;
			char *p = strrchr(stat, ')');
			if (p)
				sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr);
		}
		CHECK_I("child: tty_nr", (int)((major(st.st_rdev) << 8) | minor(st.st_rdev)), tty_nr);
	}
	if (ttyname_r(s, buf, sizeof buf) != 0)
		cr_fail("child: ttyname: %s", strerror(errno));
	else
		CHECK_S("child: slave name", pts_name, buf);
	struct stat st2;
	if (!isatty(s2) || fstat(s2, &st2) < 0 || st2.st_rdev != st.st_rdev)
		cr_fail("child: the second open file is not %s", pts_name);
	if (!(fcntl(s2, F_GETFL) & O_NONBLOCK))
		cr_fail("child: the second open file lost O_NONBLOCK");
	if (fcntl(s, F_GETFL) & O_NONBLOCK)
		cr_fail("child: the first open file got O_NONBLOCK");
	check_termios("child", s);
	check_cooked(c);
	int excl = 0;
	if (ioctl(ps, TIOCGEXCL, &excl) < 0 || !excl)
		cr_fail("child: the slave %s is no longer exclusive", packet_name);
	int stt;
	if (waitpid(gc, &stt, 0) != gc || !WIFEXITED(stt) || WEXITSTATUS(stt) != 0)
		cr_fail("grandchild %d failed its checks (status 0x%x)", (int)gc, stt);
	return cr_nfails ? 1 : 0;
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, pts_name, sizeof pts_name))
		cr_fail("setup: posix_openpt: %s", strerror(errno));
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	int cm = posix_openpt(O_RDWR | O_NOCTTY);
	if (cm < 0 || grantpt(cm) < 0 || unlockpt(cm) < 0 ||
	    ptsname_r(cm, cooked_name, sizeof cooked_name))
		cr_fail("setup: posix_openpt: %s", strerror(errno));
	int pm = posix_openpt(O_RDWR | O_NOCTTY);
	int one = 1;
	if (pm < 0 || grantpt(pm) < 0 || unlockpt(pm) < 0 ||
	    ptsname_r(pm, packet_name, sizeof packet_name) || ioctl(pm, TIOCPKT, &one) < 0)
		cr_fail("setup: packet-mode pty: %s", strerror(errno));
	pid_t kid = fork();
	if (kid == 0) {
		close(cm);
		close(pm);
		_exit(child(m));
	}
	cr_wait_for("ready-child");
	cr_wait_for("ready-gc");
	if (cr_write_all(m, to_slave, TO_SLAVE_LEN) < 0 || write_big(m, BIG_IN, 1) < 0)
		cr_fail("setup: write to the master: %s", strerror(errno));
	if (cr_write_all(cm, cooked_in, sizeof cooked_in - 1) < 0)
		cr_fail("setup: write to the canonical master: %s", strerror(errno));
	tcgetattr(m, &want_tio); /* the slave's, as the child set them */
	if (ioctl(pm, TIOCSPTLCK, &one) < 0)
		cr_fail("setup: lock the packet-mode pty: %s", strerror(errno));
	cr_ready();
	cr_wait_go();

	char name[64];
	if (ptsname_r(m, name, sizeof name) != 0)
		cr_fail("ptsname: %s", strerror(errno));
	else
		CHECK_S("pty slave name (index)", pts_name, name);
	check_termios("root", m);
	expect_bytes("master input queued before the dump", m, to_master, TO_MASTER_LEN);
	expect_big("master input past the line buffer", m, BIG_OUT, 2);
	expect_bytes("new master input", m, "new-out", 7);
	expect_nothing_more("master input", m);
	if (cr_write_all(m, "new-in", 6) < 0)
		cr_fail("write new bytes to the master: %s", strerror(errno));
	check_cooked_echo(cm);
	struct timespec ten = { 10, 0 };
	if (sigtimedwait(&usr2, NULL, &ten) != SIGUSR2)
		cr_fail("canonical: no word from the child within 10 s");
	if (cr_write_all(cm, " end\n", 5) < 0)
		cr_fail("canonical: write to the master: %s", strerror(errno));
	int pkt = 0, lck = 0;
	if (ioctl(pm, TIOCGPKT, &pkt) < 0 || !pkt)
		cr_fail("packet mode is off after restore");
	if (ioctl(pm, TIOCGPTLCK, &lck) < 0 || !lck)
		cr_fail("the packet-mode pty is unlocked after restore");
	int fd = open(packet_name, O_RDWR | O_NOCTTY);
	if (fd >= 0) {
		cr_fail("the locked slave %s could be opened", packet_name);
		close(fd);
	}
	char want[sizeof packet_out];
	want[0] = TIOCPKT_DATA;
	memcpy(want + 1, packet_out, sizeof packet_out - 1);
	expect_bytes("packet-mode output", pm, want, sizeof want);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cr_fail("child %d failed its checks (status 0x%x)", (int)kid, st);
	cr_finish();
}
