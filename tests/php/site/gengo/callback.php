<?php
// A Gengo receiver in the legacy style: Gengo posts a form whose `job` or
// `comment` field holds JSON; the script reads $_POST and json_decodes it.
require __DIR__ . '/../../record.php';

$record = array('receiver' => 'gengo');
if (isset($_POST['job'])) {
    $record['kind'] = 'job';
    $record['job'] = json_decode($_POST['job'], true);
} elseif (isset($_POST['comment'])) {
    $record['kind'] = 'comment';
    $record['comment'] = json_decode($_POST['comment'], true);
} else {
    $record['kind'] = 'unknown';
}
callgate_record($record);

callgate_answer();
