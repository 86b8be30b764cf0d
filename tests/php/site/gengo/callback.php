<?php
// The same legacy Gengo receiver, in the site's tree.
require __DIR__ . '/../../gengo/callback.php';
