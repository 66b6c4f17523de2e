#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests
# (tests/browser/test_browser.py drives it with Playwright; we never run `playwright install`),
# with an emoji font so screenshots show the panel's icons.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ -x /usr/bin/chromium ] && [ -f "$EMOJI_FONT" ]; then
  exit 0
fi
echo "installing chromium (Debian package) for the browser tests"
sudo_if_needed apt-get update -qq
sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core fonts-noto-color-emoji >/dev/null
test -x /usr/bin/chromium
/usr/bin/chromium --version 2>/dev/null || true
