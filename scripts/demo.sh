#!/bin/sh
# Placeholder: the demo lands with the dump command.
echo "demo not ready yet"
