// SPDX-License-Identifier: Apache-2.0
// Job-token authentication of store and transport connections: HMAC-SHA256 challenge-response
// with a fresh 16-byte nonce from each side, so a process without the job's token can neither
// join nor read nor write, and a recorded exchange cannot be replayed. Crypto is OpenSSL's
// libcrypto (HMAC, RAND_bytes, CRYPTO_memcmp); nothing here is hand-written cryptography.
//
// The token is NODECCL_TOKEN (nodeccl-run generates one for its ranks). Without a token the
// exchange still runs, says "no token", and lets the connection through, as before tokens
// existed; a side with a token refuses a side without one, and the reverse, with a clear
// error on both sides.
//
// Exchange (the acceptor is "server", the connector "client"; both nonces are random):
//   server -> client: u32 magic "NCCA" | u8 hasToken | 16 nonceS              (21 bytes)
//   client -> server: u32 magic | u8 hasToken | 16 nonceC | 32 macC           (53 bytes)
//   server -> client: u8 verdict (1 accepted) | 32 macS                       (33 bytes)
// with macC = HMAC(token, "nodeccl-auth-v1 client" | nonceS | nonceC), macS likewise with
// "server". macs are zero without a token. Cost: three small messages per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "transport/tcp/socket.h"

namespace nodeccl {
namespace auth {

constexpr size_t kChallengeBytes = 21, kResponseBytes = 53, kVerdictBytes = 33;
constexpr size_t kNonceBytes = 16;

// NODECCL_TOKEN, or "" when unset.
std::string tokenFromEnv();

// Server side, for event loops: the challenge to send first (keeps its nonce in *state), then
// the check of the client's response, returning the verdict to send. *why is set when the
// client is refused (wrong token, a token on one side only, not a nodeccl client).
struct ServerState {
  unsigned char nonceS[kNonceBytes];
};
std::string challenge(const std::string& token, ServerState* state);
std::string verdict(const std::string& token, const ServerState& state,
                    const unsigned char* response, bool* accepted, std::string* why);

// Blocking sides over a socket, bounded by `deadline`. Throw kIo (refused / wrong token, with
// a message naming `who` and `peer` and the fix) or kTimeout / kPeerLost.
void serverHandshake(int fd, const std::string& token, net::Deadline deadline,
                     const std::string& who, const std::string& peer);
void clientHandshake(int fd, const std::string& token, net::Deadline deadline,
                     const std::string& who, const std::string& peer);

}  // namespace auth
}  // namespace nodeccl
