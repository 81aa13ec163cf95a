#!/bin/sh
# Prints the request body in a speech bubble above a cow, like cowsay. A JSON body
# {"message": "..."} (what OSCAR's cowsay example sends) says its message; any other
# body is said as it is.
BODY=$(tr '\n' ' ' < "$INPUT_FILE_PATH" | sed 's/ *$//')
MESSAGE=$(printf '%s' "$BODY" | sed -n 's/^ *{.*"message" *: *"\([^"]*\)".*} *$/\1/p')
TEXT=${MESSAGE:-$BODY}
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
