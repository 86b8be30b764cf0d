<?php
// A download that answers at once, without reading the request's body:
// Apache then reads (and drops) a slow upload on that connection after the
// answer, so the connection stays busy long after the answer ended.
require __DIR__ . '/../record.php';
header('Content-Type: application/octet-stream');
header('Content-Length: ' . 64 * 1024);
echo str_repeat('d', 64 * 1024);
