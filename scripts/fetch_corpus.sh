#!/usr/bin/env bash
# Fetches a corpus of real English text from Debian's `fortunes` and `fortunes-min` packages
# (about 2.6 MB: quotations, jokes, literature, science, computing; one fortune per `%`-separated
# block) with `apt-get download`, unpacks them with `dpkg-deb -x` into a cache folder and copies
# the text files into one folder, whose path it prints on its last line:
#
#   CORPUS=$(scripts/fetch_corpus.sh | tail -1)
#   scripts/fetch_corpus.sh --gcide     # also the GCIDE dictionary (dict-gcide, ~50 MB of text)
#
# Left out: the `.dat` indexes, the `.u8` links, `ascii-art` (pictures, not prose) and the
# `ethnic` and `men-women` collections (stereotype jokes that would end up on the committed
# feature dashboard). The folder is $AUTO_HOOK_CACHE (default ~/.cache/auto_hook); nothing is
# written in the repo.
set -euo pipefail
cache="${AUTO_HOOK_CACHE:-$HOME/.cache/auto_hook}/corpus"
out="$cache/text"
packages=(fortunes fortunes-min)
[ "${1:-}" = "--gcide" ] && packages+=(dict-gcide)
mkdir -p "$cache/debs" "$cache/unpacked" "$out"
for pkg in "${packages[@]}"; do
  if ! ls "$cache/debs/${pkg}_"*.deb >/dev/null 2>&1; then
    (cd "$cache/debs" && apt-get download "$pkg" >&2) || {
      echo "apt-get download $pkg failed (run apt-get update, or pass your own text files)" >&2
      exit 1
    }
  fi
  dpkg-deb -x "$cache/debs/${pkg}_"*.deb "$cache/unpacked"
done
fortunes="$cache/unpacked/usr/share/games/fortunes"
for f in "$fortunes"/*; do
  name=$(basename "$f")
  case "$name" in
    *.dat | *.u8 | ascii-art | ethnic | men-women) continue ;;
  esac
  [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$out/$name"
done
if [ -f "$cache/unpacked/usr/share/dictd/gcide.dict.dz" ]; then
  # dictzip is gzip-compatible; entries are separated by blank lines.
  gzip -dc "$cache/unpacked/usr/share/dictd/gcide.dict.dz" > "$out/gcide"
fi
n=$(ls "$out" | wc -l)
test "$n" -gt 0 || { echo "no text files in $out" >&2; exit 1; }
echo "$n text files ($(du -sh "$out" | cut -f1)) in:" >&2
echo "$out"
