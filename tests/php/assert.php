<?php
// A receiver that trusts callgate's assertion, not its verified header:
// 200 with the checks callgate vouches for, or 403.
require __DIR__ . '/../../examples/verify-assertion.php';
require __DIR__ . '/record.php';

$checks = callgate_assertion('assertion-test-key');
callgate_record([
    'receiver' => 'assert',
    'accepted' => $checks,
    'assertion' => isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : null,
]);
if ($checks === false) {
    http_response_code(403);
    echo "assertion refused\n";
    exit;
}
header('Content-Type: text/plain');
echo "OK $checks\n";
