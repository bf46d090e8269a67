// Binding an httplib::Server's listening socket the way both `luzao serve` and `luzao router`
// need it: SO_REUSEADDR, port 0 for any free port, a one-line error, and a real listen backlog.
#pragma once

#include <string>

#include <httplib.h>

namespace luzao::server {

// The listening socket of one server, remembered while cpp-httplib creates it.
struct ListenSocket {
  int fd = -1;
};

// Call before bind: sets SO_REUSEADDR on the listening socket and records it in `socket`, which
// must outlive `http`.
void prepare_listen_socket(httplib::Server& http, ListenSocket& socket);

// Binds to host:port (0: any free port) and returns the port. Throws Error(kIo) naming host and
// port when that fails. cpp-httplib listens with a backlog of 5, so a burst of clients
// connecting at once would be reset; the bound socket listens again with SOMAXCONN.
int bind_listen_socket(httplib::Server& http, const ListenSocket& socket, const std::string& host,
                       int port);

}  // namespace luzao::server
