#!/bin/sh
# Stage 1: the input text in capitals, under the same name.
set -eu
NAME=$(basename "$INPUT_FILE_PATH")
tr 'a-z' 'A-Z' < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$NAME"
echo "shouted $NAME"
