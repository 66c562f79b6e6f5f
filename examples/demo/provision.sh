#!/bin/sh
# Provisioning step of the local demo, run by the `command` push: the job spec arrives
# as JSON on stdin (never as arguments); everything printed lands in the job log.
spec=$(cat)
echo "demo: $1 for job spec: $spec"
sleep 1
echo "demo: $1 done"
