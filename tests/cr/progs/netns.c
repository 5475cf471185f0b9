/* netns: a tree in a network namespace other than the host's:
 *   root   unshare(CLONE_NEWNET) (loopback up), then forks; with "keep" after WORKDIR it
 *          stays in the namespace it was started in (the driver's, net-external flavor)
 *   +- c   in the root's namespace
 * After restore both are in one network namespace, not the host's; it holds the loopback
 * alone, up, and a UDP datagram sent to 127.0.0.1 in it comes back (root and c each).
 */
#include "common.h"
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static ino_t net_ino(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/net", pid);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void set_lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		cr_fail("setup: read lo's flags: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		cr_fail("setup: set lo up: %s", strerror(errno));
	close(s);
}

/* What a restored network namespace must look like from inside. */
static void check_net(const char *who)
{
	struct if_nameindex *ifs = if_nameindex(), *p;
	int n = 0;
	for (p = ifs; p && p->if_index; p++) {
		n++;
		if (strcmp(p->if_name, "lo"))
			cr_fail("%s: link %s in the new network namespace", who, p->if_name);
	}
	if (ifs)
		if_freenameindex(ifs);
	if (n != 1)
		cr_fail("%s: %d links in the network namespace, expected lo alone", who, n);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		cr_fail("%s: read lo's flags: %s", who, strerror(errno));
	else if (!(ifr.ifr_flags & IFF_UP))
		cr_fail("%s: lo is down", who);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	char buf[16] = "";
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(s, (struct sockaddr *)&a, &len) < 0 ||
	    sendto(s, "ping", 4, 0, (struct sockaddr *)&a, sizeof a) != 4)
		cr_fail("%s: UDP to 127.0.0.1: %s", who, strerror(errno));
	else if (recv(s, buf, sizeof buf, MSG_DONTWAIT) != 4 || memcmp(buf, "ping", 4))
		cr_fail("%s: the datagram sent to 127.0.0.1 did not come back", who);
	close(s);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	static const char *stale[] = { "ready-c", "go-c" };
	for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
		char path[2300];
		cr_path(path, sizeof path, stale[i]);
		unlink(path);
	}
	const ino_t host = net_ino(1);
	if (argc < 3 || strcmp(argv[2], "keep")) {
		if (unshare(CLONE_NEWNET) < 0) {
			cr_fail("setup: unshare(CLONE_NEWNET): %s", strerror(errno));
			cr_finish();
		}
		set_lo_up();
	}
	if (net_ino(getpid()) == host)
		cr_fail("setup: in the host's network namespace");
	pid_t c = fork();
	if (c == 0) {
		cr_ready_named("ready-c");
		cr_wait_for("go-c");
		check_net("c");
		CHECK_U("c's network namespace is its parent's", net_ino(getppid()), net_ino(getpid()));
		_exit(cr_verdict("result-c"));
	}
	cr_wait_for("ready-c");
	cr_ready();
	cr_wait_go();
	if (net_ino(getpid()) == host)
		cr_fail("the root is in the host's network namespace after restore");
	check_net("root");
	cr_write_file("go-c", "", 0);
	cr_check_child(c, "c", "result-c");
	char path[2300];
	cr_path(path, sizeof path, "go-c");
	unlink(path);
	cr_finish();
}
