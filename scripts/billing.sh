#!/usr/bin/env bash
# `make run-billing`: the billing example host (examples/hosts/billing) with plugdock embedded,
# on SQLite by default (DATABASE_URL overrides), the example plugins offered from ./modules.
set -euo pipefail
umask 077  # the SQLite database and the instance folder are nobody else's
cd "$(dirname "$0")/.."
home="${BILLING_HOME:-$PWD/instance-billing}"
mkdir -p "$home"
export PYTHONPATH="$PWD/examples/hosts/billing${PYTHONPATH:+:$PYTHONPATH}"
export DATABASE_URL="${DATABASE_URL:-sqlite:///$home/billing.db}"
export PLUGIN_LOCAL_DIR="${PLUGIN_LOCAL_DIR:-$PWD/modules}"  # make exports it; by hand too
export PLUGDOCK_HOME="$home/plugdock"  # plugdock's instance folder; its tables are in DATABASE_URL
export BILLING_ADMIN_PASSWORD="${BILLING_ADMIN_PASSWORD:-billing-admin}"
export BILLING_CLERK_PASSWORD="${BILLING_CLERK_PASSWORD:-billing-clerk}"
export BILLING_HOST="${BILLING_HOST:-127.0.0.1}" BILLING_PORT="${BILLING_PORT:-8100}"
export BILLING_WORKERS="${BILLING_WORKERS:-2}"

echo "== billing schema, accounts and demo data"
.venv/bin/python -m billing.seed
echo "== plugins offered from $PLUGIN_LOCAL_DIR"
.venv/bin/plugdock available
cat <<MSG

  Billing:    http://$BILLING_HOST:$BILLING_PORT/            (API docs: http://$BILLING_HOST:$BILLING_PORT/docs)
  Sign in:    admin@billing.example / $BILLING_ADMIN_PASSWORD   (a non-admin: clerk@billing.example / $BILLING_CLERK_PASSWORD)
  Database:   $DATABASE_URL
  Plugins:    the same environment drives the CLI, e.g.
              PLUGDOCK_HOME=$PLUGDOCK_HOME DATABASE_URL=$DATABASE_URL .venv/bin/plugdock install ai_chatbot@1.0.0

MSG
exec .venv/bin/python -m billing.serve
