#!/bin/sh
# run-banner.sh - how to try the gateway `make run` is about to start.
cat <<'MSG'

intake: starting intaked with conf/intake.conf (SMTP on 127.0.0.1:2525,
HTTP on 127.0.0.1:8080).
Stop it with Ctrl-C (SIGTERM/SIGINT: sessions get 421, nothing accepted is lost).

Send a test message from another terminal:

  swaks --server 127.0.0.1:2525 --to enquiries@council.example \
        --from citizen@example.org --header 'Subject: Bin not collected'

or with curl:

  printf 'From: citizen@example.org\r\nSubject: Pothole\r\n\r\nHello\r\n' > /tmp/m.eml
  curl -s smtp://127.0.0.1:2525 --mail-from citizen@example.org \
       --mail-rcpt enquiries@council.example --upload-file /tmp/m.eml

Or fill in a web form in a browser:

  http://127.0.0.1:8080/forms/contact   (also /forms/complaint, /forms/foi)

Health and metrics: http://127.0.0.1:8080/healthz  http://127.0.0.1:8080/metrics

List what arrived, and see why each case went where it went:

  build/intakectl cases list
  build/intakectl cases show ESC-YYYY-NNNNNN-C
  build/intakectl rules test some-message.eml
  build/intakectl audit verify

MSG
