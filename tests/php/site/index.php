<?php
// A front controller, as legacy sites have: every page and, with
// ?action=tolq_callback, the Tolq callback go through index.php. Like
// Laravel's input(), a JSON body's fields count as input too, and the
// route a rewrite copied into the query (OpenCart's _route_, nginx's q)
// dispatches like a pretty URL.
require __DIR__ . '/../record.php';
$input = $_REQUEST;
$type = isset($_SERVER['CONTENT_TYPE']) ? $_SERVER['CONTENT_TYPE'] : '';
if (stripos($type, 'json') !== false) {
    $json = json_decode(file_get_contents('php://input'), true);
    if (is_array($json)) {
        $input = array_merge($input, $json);
    }
}
$action = isset($input['action']) ? $input['action'] : 'home';
callgate_record(['receiver' => 'site', 'script' => 'index.php', 'action' => $action]);
header('Content-Type: text/plain');
echo "page $action\n";
