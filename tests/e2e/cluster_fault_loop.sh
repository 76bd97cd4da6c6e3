#!/usr/bin/env bash
# The long cluster fault run: under load, ROUNDS times (20 by default), SIGKILLs a random
# nats-server or fidelisd node of a 3-server R3 cluster with two nodes, restarts it, and checks
# that every acknowledged command is in the log once, positions are gapless and both nodes
# converge. CI runs 3 rounds of the same test.
#   tests/e2e/cluster_fault_loop.sh [ROUNDS] [build-dir]
set -euo pipefail
rounds=${1:-20}
build=${2:-build}
FIDELIS_CLUSTER_ROUNDS=$rounds "$build/tests/e2e_tests" --gtest_filter='ClusterTest.EveryAcknowledgedCommandSurvivesKillsOfServersAndNodes'
