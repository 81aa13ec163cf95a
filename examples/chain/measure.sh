#!/bin/sh
# Stage 2: lines, words and bytes of stage 1's output, in <name>.count.
set -eu
NAME=$(basename "$INPUT_FILE_PATH")
set -- $(wc -l -w -c < "$INPUT_FILE_PATH")
printf 'lines %s\nwords %s\nbytes %s\n' "$1" "$2" "$3" > "$TMP_OUTPUT_DIR/$NAME.count"
echo "measured $NAME"
