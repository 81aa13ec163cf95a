#!/bin/sh
# Prints the request body in a speech bubble above a cow, like cowsay.
TEXT=$(tr '\n' ' ' < "$INPUT_FILE_PATH" | sed 's/ *$//')
[ -n "$TEXT" ] || TEXT="Moo!"
WIDTH=$((${#TEXT} + 2))
LINE=$(awk -v width="$WIDTH" 'BEGIN { while (i++ < width) printf "-" }')
echo " $LINE"
echo "< $TEXT >"
echo " $LINE"
cat <<'COW'
        \   ^__^
         \  (oo)\_______
            (__)\       )\/\
                ||----w |
                ||     ||
COW
