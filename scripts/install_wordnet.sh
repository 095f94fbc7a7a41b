#!/usr/bin/env bash
# Installs WordNet 3.0 for NLTK's METEOR without the network nltk.download needs:
# Debian's wordnet-base and wordnet-sense-index hold the same Princeton files NLTK
# ships, except `lexnames`, which we rebuild from the package's own lexnames(5WN) page.
# Usage: install_wordnet.sh NLTK_DATA_DIR
set -euo pipefail
dest="$1/corpora/wordnet"
[ -f "$dest/lexnames" ] && [ -f "$dest/index.sense" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1) || {
    echo "install_wordnet: 'apt-get download wordnet-base wordnet-sense-index' failed;" \
         "METEOR needs WordNet (or run: python -m nltk.downloader wordnet)" >&2
    exit 1
}
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
mkdir -p "$dest"
# NLTK rejects symlinked corpora, so copy the files.
cp "$work"/root/usr/share/wordnet/* "$dest/"
# lexnames: "NN<TAB>name<TAB>pos" with pos 1 noun, 2 verb, 3 adjective, 4 adverb.
zcat "$work/root/usr/share/man/man5/lexnames.5WN.gz" | awk -F'\t' '
    /^[0-9][0-9]\t/ {
        name = $2; gsub(/ +$/, "", name); split(name, part, ".")
        pos = (part[1] == "noun") ? 1 : (part[1] == "verb") ? 2 : (part[1] == "adj") ? 3 : 4
        printf "%s\t%s\t%d\n", $1, name, pos
    }' > "$dest/lexnames"
[ "$(wc -l < "$dest/lexnames")" -eq 45 ] || { echo "install_wordnet: lexnames incomplete" >&2; exit 1; }
echo "WordNet installed in $dest"
