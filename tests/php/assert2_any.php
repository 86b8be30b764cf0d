<?php
// A v2 receiver for any route: the route and where ids are remembered come
// from the upstream URL callgate's route fixes (?route=NAME&seen=DIR, or
// seen=none for a receiver with neither APCu nor a seen dir). 200 with the
// checks callgate vouches for, or 403; why, in PHP's error_log.
require __DIR__ . '/../../examples/verify-assertion.php';
require __DIR__ . '/record.php';

$route = isset($_GET['route']) ? $_GET['route'] : '';
$seen = (isset($_GET['seen']) && $_GET['seen'] !== 'none') ? $_GET['seen'] : null;
$checks = callgate_assertion_v2('assertion-test-key', $route, $seen);
callgate_record([
    'receiver' => 'assert2_any',
    'accepted' => $checks,
    'post_fields' => count($_POST),
    'assertion' => isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : null,
]);
if ($checks === false) {
    http_response_code(403);
    echo "assertion refused\n";
    exit;
}
header('Content-Type: text/plain');
echo "OK $checks\n";
