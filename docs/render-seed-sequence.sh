#!/usr/bin/env bash
# Renders docs/seed-sequence.mmd to docs/seed-sequence.png without Mermaid CLI (its own browser
# download cannot run here): mermaid from npm in a temp dir, Debian's headless chromium for the picture.
# Needs: npm, chromium (apt-get install -y chromium). Nothing is installed into the repository.
set -euo pipefail
docs="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund mermaid@11)

{
  cat <<EOF
<!doctype html>
<html><head><meta charset="utf-8">
<style>body{margin:12px;background:#fff} pre.mermaid{margin:0}</style>
<script src="file://$work/node_modules/mermaid/dist/mermaid.min.js"></script>
</head><body>
<pre class="mermaid">
EOF
  cat "$docs/seed-sequence.mmd"
  cat <<'EOF'
</pre>
<script>
mermaid.initialize({startOnLoad: true, theme: "default",
  sequence: {useMaxWidth: true, mirrorActors: false, actorMargin: 30, width: 130, messageMargin: 28,
             boxMargin: 6, messageFontSize: 14, actorFontSize: 15, noteFontSize: 13}});
</script>
</body></html>
EOF
} >"$work/page.html"

# the window is sized to the rendered diagram (about 1314 x 1735 px plus the page margin)
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
  --virtual-time-budget=8000 --window-size=1360,1790 \
  --screenshot="$docs/seed-sequence.png" "file://$work/page.html"
