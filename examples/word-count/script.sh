#!/bin/sh
# Runs once per uploaded file: $INPUT_FILE_PATH is the file, $TMP_OUTPUT_DIR is uploaded after.
set -e
name=$(basename "$INPUT_FILE_PATH" .txt)
report="$TMP_OUTPUT_DIR/$name.count.txt"
echo "counting words in $STORAGE_OBJECT_KEY"
set -- $(wc -l -w -c < "$INPUT_FILE_PATH")
{
    echo "file: $STORAGE_OBJECT_KEY"
    echo "lines: $1"
    echo "words: $2"
    echo "characters: $3"
    echo "most frequent words:"
    tr -cs 'A-Za-z' '\n' < "$INPUT_FILE_PATH" | tr 'A-Z' 'a-z' | grep -v '^$' \
        | sort | uniq -c | sort -rn | head -3
} > "$report"
echo "wrote $(basename "$report")"
