// SPDX-License-Identifier: Apache-2.0
// Job-token handshake (see auth.h): message building and checking with OpenSSL's HMAC-SHA256.
#include "common/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace nodeccl {
namespace auth {
namespace {

constexpr uint32_t kMagic = 0x4143434e;  // "NCCA"
constexpr size_t kMacBytes = 32;

void randomNonce(unsigned char* out) {
  if (RAND_bytes(out, int(kNonceBytes)) != 1) {
    throw Error(ErrorCode::kIo, "nodeccl auth: the system random generator failed (RAND_bytes)");
  }
}

// HMAC-SHA256(token, label | nonceS | nonceC) into out[32]; zeros without a token.
void mac(const std::string& token, const char* label, const unsigned char* nonceS,
         const unsigned char* nonceC, unsigned char* out) {
  std::memset(out, 0, kMacBytes);
  if (token.empty()) return;
  std::string msg = label;
  msg.append(reinterpret_cast<const char*>(nonceS), kNonceBytes);
  msg.append(reinterpret_cast<const char*>(nonceC), kNonceBytes);
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), token.data(), int(token.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len) == nullptr ||
      len != kMacBytes) {
    throw Error(ErrorCode::kIo, "nodeccl auth: HMAC-SHA256 failed (OpenSSL)");
  }
}

// Why two sides cannot talk, when exactly one has a token.
std::string presenceWhy(bool mine, bool theirs, const std::string& peer) {
  return mine ? strcat(peer, " has no job token while this process has one (NODECCL_TOKEN)")
              : strcat(peer, " requires a job token and this process has none");
}

void sendOrThrow(int fd, const void* p, size_t n, net::Deadline d, const std::string& who,
                 const std::string& peer) {
  int err = 0;
  if (net::sendAll(fd, p, n, d, -1, &err) != net::IoStatus::kDone) {
    throw Error(ErrorCode::kPeerLost, strcat(who, ": authentication with ", peer, " failed: the "
                                             "connection closed or timed out while sending"));
  }
}

void recvOrThrow(int fd, void* p, size_t n, net::Deadline d, const std::string& who,
                 const std::string& peer, const char* hint) {
  int err = 0;
  net::IoStatus st = net::recvAll(fd, p, n, d, -1, &err);
  if (st == net::IoStatus::kTimeout) {
    throw Error(ErrorCode::kTimeout, strcat(who, ": authentication with ", peer,
                                            " timed out; ", hint));
  }
  if (st != net::IoStatus::kDone) {
    throw Error(ErrorCode::kIo, strcat(who, ": ", peer, " closed the connection during "
                                       "authentication; ", hint));
  }
}

}  // namespace

std::string tokenFromEnv() {
  const char* t = std::getenv("NODECCL_TOKEN");
  return t ? std::string(t) : std::string();
}

std::string challenge(const std::string& token, ServerState* state) {
  randomNonce(state->nonceS);
  std::string out(kChallengeBytes, '\0');
  auto* p = reinterpret_cast<unsigned char*>(&out[0]);
  net::putU32(p, kMagic);
  p[4] = token.empty() ? 0 : 1;
  std::memcpy(p + 5, state->nonceS, kNonceBytes);
  return out;
}

std::string verdict(const std::string& token, const ServerState& state,
                    const unsigned char* response, bool* accepted, std::string* why) {
  std::string out(kVerdictBytes, '\0');
  auto* v = reinterpret_cast<unsigned char*>(&out[0]);
  *accepted = false;
  const bool mine = !token.empty(), theirs = response[4] != 0;
  const unsigned char* nonceC = response + 5;
  if (net::getU32(response) != kMagic) {
    *why = "it is not a nodeccl client (bad authentication magic)";
  } else if (mine != theirs) {
    *why = presenceWhy(mine, theirs, "the client");
  } else {
    unsigned char expect[kMacBytes];
    mac(token, "nodeccl-auth-v1 client", state.nonceS, nonceC, expect);
    if (mine && CRYPTO_memcmp(expect, response + 5 + kNonceBytes, kMacBytes) != 0) {
      *why = "its job token differs from this job's (NODECCL_TOKEN)";
    } else {
      *accepted = true;
      v[0] = 1;
      mac(token, "nodeccl-auth-v1 server", state.nonceS, nonceC, v + 1);
    }
  }
  return out;
}

void serverHandshake(int fd, const std::string& token, net::Deadline deadline,
                     const std::string& who, const std::string& peer) {
  ServerState st;
  std::string c = challenge(token, &st);
  sendOrThrow(fd, c.data(), c.size(), deadline, who, peer);
  unsigned char resp[kResponseBytes];
  recvOrThrow(fd, resp, sizeof(resp), deadline, who, peer, "is it a nodeccl process?");
  bool ok = false;
  std::string why;
  std::string v = verdict(token, st, resp, &ok, &why);
  int err = 0;
  net::sendAll(fd, v.data(), v.size(), deadline, -1, &err);
  if (!ok) {
    throw Error(ErrorCode::kIo, strcat(who, ": refused a connection from ", peer, ": ", why,
                                       "; give every process of the job the same "
                                       "NODECCL_TOKEN"));
  }
}

void clientHandshake(int fd, const std::string& token, net::Deadline deadline,
                     const std::string& who, const std::string& peer) {
  const char* hint = "is it a nodeccl process of the same version?";
  unsigned char ch[kChallengeBytes];
  recvOrThrow(fd, ch, sizeof(ch), deadline, who, peer, hint);
  const bool mine = !token.empty(), theirs = ch[4] != 0;
  if (net::getU32(ch) != kMagic) {
    throw Error(ErrorCode::kIo, strcat(who, ": ", peer, " did not start a nodeccl "
                                       "authentication (bad magic); ", hint));
  }
  unsigned char resp[kResponseBytes];
  net::putU32(resp, kMagic);
  resp[4] = mine ? 1 : 0;
  randomNonce(resp + 5);
  mac(token, "nodeccl-auth-v1 client", ch + 5, resp + 5, resp + 5 + kNonceBytes);
  sendOrThrow(fd, resp, sizeof(resp), deadline, who, peer);
  const std::string fix = "; give every process of the job the same NODECCL_TOKEN";
  if (mine != theirs) {
    throw Error(ErrorCode::kIo, strcat(who, ": ", presenceWhy(mine, theirs, peer), fix));
  }
  unsigned char v[kVerdictBytes];
  recvOrThrow(fd, v, sizeof(v), deadline, who, peer, hint);
  if (v[0] != 1) {
    throw Error(ErrorCode::kIo, strcat(who, ": ", peer, " refused this process's job token "
                                       "(NODECCL_TOKEN differs from the job's)", fix));
  }
  unsigned char expect[kMacBytes];
  mac(token, "nodeccl-auth-v1 server", ch + 5, resp + 5, expect);
  if (mine && CRYPTO_memcmp(expect, v + 1, kMacBytes) != 0) {
    throw Error(ErrorCode::kIo, strcat(who, ": ", peer, " could not prove the job token: it is "
                                       "not this job's server", fix));
  }
}

}  // namespace auth
}  // namespace nodeccl
