<?php
// Verify callgate's signed assertion in a PHP receiver. $key is the secret of
// [gateway] assertion.key.
//
// Version 2 ([gateway] assertion = { key = ..., version = 2 }): use
// callgate_assertion_v2(). Version 1 (the default): callgate_assertion().

// v1. Returns the checks callgate vouches for (e.g. "ip,token,hmac"), or false
// for a forged, altered, stale or re-routed request.
function callgate_assertion($key, $max_age = 300)
{
    $h = isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : '';
    $at = strrpos($h, ';sig=');
    if (strncmp($h, 'v1;', 3) !== 0 || $at === false) {
        return false;
    }
    $signed = substr($h, 0, $at);
    // Bound to this method and request target: replayed elsewhere, it fails.
    $message = $signed . "\n" . $_SERVER['REQUEST_METHOD'] . ' ' . $_SERVER['REQUEST_URI'];
    if (!hash_equals(hash_hmac('sha256', $message, $key), substr($h, $at + 5))) {
        return false;
    }
    if (!preg_match('/^v1;t=(\d+);route=.*;checks=([a-z,]+);body=([0-9a-f]{64})$/s', $signed, $m)) {
        return false;
    }
    if (abs(time() - (int) $m[1]) > $max_age) {
        return false;
    }
    if (!hash_equals($m[3], hash('sha256', file_get_contents('php://input')))) {
        return false;
    }
    return $m[2];
}

// v2. $route: the callgate route this script serves (a callback for another
// route is refused). $seen_dir: a directory only this site writes, where
// each assertion id is remembered so a request is accepted once (APCu is
// used instead when it is enabled). Returns the checks callgate vouches for,
// or false, with the reason in error_log().
//
// What is checked, all against what this request is, never against what the
// header says: route, method, request target, Host, Content-Type, the body's
// SHA-256, the age, and that the id is new (with APCu or $seen_dir: without
// either, nothing could remember it, and every request is refused).
//
// Multipart bodies: PHP parses multipart/form-data into $_POST and $_FILES
// and leaves php://input empty, so the body cannot be hashed, and a request
// is refused. A receiver of multipart callbacks has PHP keep the raw body
// instead: enable_post_data_reading = 0 for that script (a .user.ini or
// .htaccess beside it, `php_admin_flag[enable_post_data_reading] = off` in
// its php-fpm pool, or `php -d enable_post_data_reading=0`), then parses
// php://input itself once the assertion holds.
function callgate_assertion_v2($key, $route, $seen_dir = null, $max_age = 300)
{
    $h = isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : '';
    $at = strrpos($h, ';sig=');
    if ($at === false || !preg_match('/^v2;t=(\d{1,12});id=([0-9a-f]{32});route=[^;]*;checks=([a-z,]*);host=/', $h, $m)) {
        return callgate_assertion_refused($h === '' ? 'no assertion header' : 'the assertion header is malformed');
    }
    list(, $t, $id, $checks) = $m;
    // The string callgate signed if it vouched for exactly this request.
    $host = isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : '';
    $ct = isset($_SERVER['CONTENT_TYPE']) ? $_SERVER['CONTENT_TYPE'] : '';
    if (preg_match('~^\s*multipart/form-data~i', $ct) && ini_get('enable_post_data_reading')) {
        return callgate_assertion_refused('a multipart body, which PHP parsed and left out of php://input, so it cannot be checked: set enable_post_data_reading=0 for this script and parse php://input yourself');
    }
    $body = hash('sha256', file_get_contents('php://input'));
    $expected = "v2;t=$t;id=$id;route=$route;checks=$checks;host=$host;ct=$ct;body=$body";
    $message = $expected . "\n" . $_SERVER['REQUEST_METHOD'] . ' ' . $_SERVER['REQUEST_URI'];
    if (!hash_equals(hash_hmac('sha256', $message, $key), substr($h, $at + 5))) {
        return callgate_assertion_refused('the signature does not match this request (route, method, target, Host, Content-Type or body)');
    }
    if (abs(time() - (int) $t) > $max_age) {
        return callgate_assertion_refused('the assertion is older than ' . $max_age . ' s');
    }
    $once = callgate_assertion_once($id, $seen_dir, $max_age);
    if ($once !== true) {
        return callgate_assertion_refused($once);
    }
    return $checks;
}

// Log why an assertion is refused; false.
function callgate_assertion_refused($why)
{
    error_log('callgate_assertion_v2: refused: ' . $why);
    return false;
}

// Remember $id for twice the age limit: true if it is new, else why not.
function callgate_assertion_once($id, $seen_dir, $max_age)
{
    if (function_exists('apcu_add') && ini_get('apc.enabled') && (PHP_SAPI !== 'cli' || ini_get('apc.enable_cli'))) {
        return apcu_add('callgate-assertion-' . $id, 1, 2 * $max_age) ? true : 'a replay (the id was seen before)';
    }
    if ($seen_dir === null) {
        return 'nowhere to remember assertion ids, so a replay could not be told: enable APCu or pass $seen_dir';
    }
    if (!is_dir($seen_dir) && !@mkdir($seen_dir, 0700, true) && !is_dir($seen_dir)) {
        return 'cannot create ' . $seen_dir . ' to remember assertion ids';
    }
    // 'x' creates the file or fails if it exists: one step, no race.
    $f = @fopen($seen_dir . '/' . $id, 'x');
    if ($f === false) {
        return file_exists($seen_dir . '/' . $id) ? 'a replay (the id was seen before)' : 'cannot write in ' . $seen_dir;
    }
    fclose($f);
    // Now and then, forget ids older than any assertion still accepted.
    if (mt_rand(0, 99) === 0) {
        foreach (glob($seen_dir . '/*') as $old) {
            if (filemtime($old) < time() - 2 * $max_age) {
                @unlink($old);
            }
        }
    }
    return true;
}
