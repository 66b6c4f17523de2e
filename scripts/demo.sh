#!/usr/bin/env bash
# `make run`: the panel on SQLite, with the example plugins offered from ./modules.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLUGDOCK_ADMIN_PASSWORD="${PLUGDOCK_ADMIN_PASSWORD:-plugdock-admin}"
host="${PLUGDOCK_HOST:-127.0.0.1}"
port="${PLUGDOCK_PORT:-8000}"
echo "== plugins offered from $PLUGIN_LOCAL_DIR"
.venv/bin/plugdock available
if [ ! -e "$PLUGDOCK_HOME/panel.db" ]; then
  # A fresh instance starts on the chatbot's first release, so its update is on offer.
  echo "== a fresh instance: installing ai_chatbot 1.0.0 (1.1.0 is offered as its update)"
  .venv/bin/plugdock install ai_chatbot@1.0.0 >/dev/null
fi
cat <<MSG

  Panel:      http://$host:$port/            (API docs: http://$host:$port/docs)
  Sign in:    admin / $PLUGDOCK_ADMIN_PASSWORD   (first start only; 'plugdock user passwd admin' resets it)
  Instance:   $PLUGDOCK_HOME
  The marketplace shows "Update available 1.1.0" on the AI Chatbot: Update keeps its chats.

MSG
exec .venv/bin/plugdock serve --host "$host" --port "$port"
