<?php
// A receiver of route "direct" that trusts callgate's v2 assertion, not its
// verified header, and accepts each assertion once: 200 with the checks
// callgate vouches for, or 403.
require __DIR__ . '/../../examples/verify-assertion.php';
require __DIR__ . '/record.php';

$seen = getenv('CALLGATE_ASSERTION_SEEN') ?: sys_get_temp_dir() . '/callgate-assertion-seen';
$checks = callgate_assertion_v2('assertion-test-key', 'direct', $seen);
callgate_record([
    'receiver' => 'assert2',
    'accepted' => $checks,
    'host' => isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : null,
    'assertion' => isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : null,
]);
if ($checks === false) {
    http_response_code(403);
    echo "assertion refused\n";
    exit;
}
header('Content-Type: text/plain');
echo "OK $checks\n";
