#!/bin/sh
# Writes a grayscale copy of the input image, under the same name, to the output folder.
set -eu
FILE_NAME=$(basename "$INPUT_FILE_PATH")
OUTPUT_FILE="$TMP_OUTPUT_DIR/$FILE_NAME"
echo "Converting $FILE_NAME to grayscale"
# ImageMagick 7 calls itself `magick`; older images only have `convert`.
if command -v magick >/dev/null 2>&1; then
    magick "$INPUT_FILE_PATH" -colorspace Gray "$OUTPUT_FILE"
else
    convert "$INPUT_FILE_PATH" -colorspace Gray "$OUTPUT_FILE"
fi
echo "Wrote $OUTPUT_FILE"
