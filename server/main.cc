// fidelisd: the Fidelis server. Everything it does is in daemon.h.
#include "server/daemon.h"

int main(int argc, char** argv) { return fidelis::server::RunDaemon(argc, argv); }
