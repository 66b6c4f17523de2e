#!/usr/bin/env bash
# `make run`: a fresh instance with the example plugins from ./modules installed.
# (The panel, `plugdock serve`, replaces this once it exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
plugdock=.venv/bin/plugdock
rm -rf "$PLUGDOCK_HOME"
echo "== available in $PLUGIN_LOCAL_DIR"
$plugdock available
echo "== install ai_chatbot into a fresh instance at $PLUGDOCK_HOME"
$plugdock install ai_chatbot --by demo
$plugdock list
$plugdock doctor
echo "== files"
find "$PLUGDOCK_HOME/addons" -maxdepth 2 | sort
