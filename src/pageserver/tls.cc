#include "pageserver/tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/log.h"

namespace cryo::pageserver {
namespace {

constexpr const char* kCaCert = "/etc/pki/CA/cacert.pem";
constexpr const char* kCaCrl = "/etc/pki/CA/cacrl.pem";
constexpr const char* kCert = "/etc/pki/criu/cert.pem";
constexpr const char* kKey = "/etc/pki/criu/private/key.pem";

std::string or_default(const std::string& s, const char* def) {
  return s.empty() ? std::string(def) : s;
}

}  // namespace

struct TlsSession::Impl {
  gnutls_certificate_credentials_t cred = nullptr;
  gnutls_session_t session = nullptr;
  ~Impl() {
    if (session) gnutls_deinit(session);
    if (cred) gnutls_certificate_free_credentials(cred);
  }
};

TlsSession::TlsSession(int fd, const TlsOptions& o, bool server, const std::string& host,
                       const std::string& peer)
    : impl_(std::make_unique<Impl>()) {
  auto check = [&](int rc, const char* what) {
    if (rc < 0) fail("TLS with {}: {}: {}", peer, what, gnutls_strerror(rc));
  };
  check(gnutls_certificate_allocate_credentials(&impl_->cred), "cannot allocate credentials");
  const std::string cacert = or_default(o.cacert, kCaCert);
  if (o.cacert.empty()) check(gnutls_certificate_set_x509_system_trust(impl_->cred), "system CAs");
  int n = gnutls_certificate_set_x509_trust_file(impl_->cred, cacert.c_str(), GNUTLS_X509_FMT_PEM);
  if (n < 0 && !o.cacert.empty())
    fail("cannot load the CA certificate {} (--tls-cacert): {}", cacert, gnutls_strerror(n));
  if (n == 0 && !o.cacert.empty())
    fail("no CA certificate in {} (--tls-cacert): give a PEM file", cacert);
  const std::string cacrl = or_default(o.cacrl, kCaCrl);
  if (::access(cacrl.c_str(), R_OK) == 0) {
    int rc = gnutls_certificate_set_x509_crl_file(impl_->cred, cacrl.c_str(), GNUTLS_X509_FMT_PEM);
    if (rc < 0) fail("cannot load the revocation list {}: {}", cacrl, gnutls_strerror(rc));
  } else if (!o.cacrl.empty()) {
    fail_sys("cannot read the revocation list {} (--tls-cacrl)", cacrl);
  }
  const std::string cert = or_default(o.cert, kCert), key = or_default(o.key, kKey);
  int rc = gnutls_certificate_set_x509_key_file(impl_->cred, cert.c_str(), key.c_str(),
                                                GNUTLS_X509_FMT_PEM);
  if (rc < 0)
    fail("cannot load the TLS certificate {} and key {} (--tls-cert, --tls-key): {}", cert, key,
         gnutls_strerror(rc));

  check(gnutls_init(&impl_->session, server ? GNUTLS_SERVER : GNUTLS_CLIENT), "init");
  check(gnutls_credentials_set(impl_->session, GNUTLS_CRD_CERTIFICATE, impl_->cred), "credentials");
  check(gnutls_set_default_priority(impl_->session), "priorities");
  gnutls_transport_set_int(impl_->session, fd);
  if (server) {
    gnutls_certificate_server_set_request(impl_->session, GNUTLS_CERT_REQUIRE);
    gnutls_certificate_send_x509_rdn_sequence(impl_->session, 1);
  }
  do rc = gnutls_handshake(impl_->session);
  while (rc < 0 && !gnutls_error_is_fatal(rc));
  if (rc < 0) {
    if (rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR ||
        rc == GNUTLS_E_PREMATURE_TERMINATION)
      fail(
          "TLS handshake with {} failed: {} (is TLS on at both ends, and does the peer accept "
          "this certificate?)",
          peer, gnutls_strerror(rc));
    fail(
        "TLS handshake with {} failed: {}: check --tls-cacert, --tls-cert and --tls-key at both "
        "ends",
        peer, gnutls_strerror(rc));
  }
  unsigned status = 0;
  rc = gnutls_certificate_verify_peers3(impl_->session, host.empty() ? nullptr : host.c_str(),
                                        &status);
  if (rc < 0) fail("cannot verify the TLS certificate of {}: {}", peer, gnutls_strerror(rc));
  if (status != 0) {
    gnutls_datum_t out{};
    std::string why = "invalid";
    if (gnutls_certificate_verification_status_print(
            status, gnutls_certificate_type_get(impl_->session), &out, 0) == 0) {
      why = reinterpret_cast<const char*>(out.data);
      gnutls_free(out.data);
    }
    fail("the TLS certificate of {} is not trusted: {}{}", peer, why,
         host.empty() ? "" : " (--tls-no-cn-verify skips the name check)");
  }
  log::info("TLS session with {} established", peer);
}

TlsSession::~TlsSession() = default;

ssize_t TlsSession::send(const void* data, size_t len) {
  ssize_t n = gnutls_record_send(impl_->session, data, len);
  if (n >= 0) return n;
  errno = (n == GNUTLS_E_AGAIN) ? EAGAIN : (n == GNUTLS_E_INTERRUPTED) ? EINTR : EPIPE;
  return -1;
}

ssize_t TlsSession::recv(void* data, size_t len) {
  ssize_t n = gnutls_record_recv(impl_->session, data, len);
  if (n >= 0) return n;
  if (n == GNUTLS_E_PREMATURE_TERMINATION) return 0;
  errno = (n == GNUTLS_E_AGAIN) ? EAGAIN : (n == GNUTLS_E_INTERRUPTED) ? EINTR : ECONNRESET;
  return -1;
}

void TlsSession::bye() {
  int rc;
  do rc = gnutls_bye(impl_->session, GNUTLS_SHUT_WR);
  while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
}

}  // namespace cryo::pageserver
