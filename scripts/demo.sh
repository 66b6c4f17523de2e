#!/usr/bin/env bash
# `make run`: the panel on SQLite, with the example plugins offered from ./modules.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLUGDOCK_ADMIN_PASSWORD="${PLUGDOCK_ADMIN_PASSWORD:-plugdock-admin}"
host="${PLUGDOCK_HOST:-127.0.0.1}"
port="${PLUGDOCK_PORT:-8000}"
echo "== plugins offered from $PLUGIN_LOCAL_DIR"
.venv/bin/plugdock available
cat <<MSG

  Panel:      http://$host:$port/            (API docs: http://$host:$port/docs)
  Sign in:    admin / $PLUGDOCK_ADMIN_PASSWORD   (first start only; 'plugdock user passwd admin' resets it)
  Instance:   $PLUGDOCK_HOME
  Then open the marketplace and install the AI Chatbot.

MSG
exec .venv/bin/plugdock serve --host "$host" --port "$port"
