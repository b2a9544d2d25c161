"""What `lab grade` expects: every exercise, its checks and their points, and the check files' hashes.

The grader scores from this list, not from whatever the check folder holds
when it runs: a check that is missing or did not report a signed pass scores 0,
so deleting check files (by hand or from a graded module) lowers the score
instead of shrinking the total. The check files are hashed too: a changed file
stops `lab grade` with an error rather than grade against edited checks.
It lives in `lab/`, away from the folders a student hands in.

After a deliberate change to `tests/grading/`, update this file;
`tests/test_course.py::test_manifest_matches_the_check_files` prints the new values.
"""
from __future__ import annotations

CHECKS: dict[str, dict[str, int]] = {  # exercise -> check (pytest node name) -> points
    "ex01_captions": {
        "test_read_caption_file_cleans_and_drops_blank_lines": 2,
        "test_read_caption_file_cuts_long_lines": 1,
        "test_cvpr_layout_first_captions_sorted": 2,
        "test_cvpr_layout_all_captions": 1,
        "test_skipped_images_are_counted": 2,
        "test_original_layout_with_labels": 2,
        "test_user_mistakes_raise_lab_error": 1,
    },
    "ex02_encode": {
        "test_encoder_interface_and_dim": 2,
        "test_encode_shape_dtype_device": 2,
        "test_encode_matches_sentence_transformers": 2,
        "test_similar_captions_are_closer": 1,
        "test_unloadable_weights_raise_lab_error": 1,
        "test_mpnet_factory_finds_installed_weights": 2,
    },
    "ex03_dataset": {
        "test_length_and_image_size": 1,
        "test_batch_contents": 2,
        "test_wrong_images_differ_and_come_from_another_class": 3,
        "test_wrong_images_without_labels": 2,
        "test_wrong_draws_follow_the_dataset_generator": 2,
        "test_single_item": 1,
        "test_one_image_is_a_lab_error": 1,
    },
    "ex04_generator": {
        "test_output_shape_and_attributes[64]": 2,
        "test_output_shape_and_attributes[128]": 2,
        "test_output_is_tanh_range": 1,
        "test_output_depends_on_text_and_noise": 2,
        "test_gradient_reaches_every_parameter": 2,
        "test_architecture_size": 1,
        "test_dcgan_initialisation": 1,
        "test_unsupported_size_is_a_lab_error": 1,
        "test_plugs_into_the_trainer": 2,
    },
    "ex05_discriminator": {
        "test_output_shapes[64]": 2,
        "test_output_shapes[128]": 2,
        "test_head_sees_image_and_text_channels": 1,
        "test_text_is_replicated_over_the_4x4_features": 2,
        "test_text_changes_the_score_not_the_features": 2,
        "test_gradient_reaches_inputs_and_parameters": 2,
        "test_architecture_size": 1,
        "test_wrong_image_size_is_a_lab_error": 1,
        "test_plugs_into_the_trainer": 2,
    },
    "ex06_loss": {
        "test_discriminator_loss_values": 3,
        "test_discriminator_loss_is_low_when_d_is_right": 1,
        "test_generator_loss_values": 3,
        "test_generator_loss_weights": 1,
        "test_gradients_flow_to_fakes_only": 2,
    },
    "ex07_train_step": {
        "test_returns_float_terms": 2,
        "test_discriminator_judges_each_group_alone": 3,
        "test_d_sees_the_fakes_as_it_would_alone": 2,
        "test_generator_step_uses_updated_d_and_detached_real_features": 2,
        "test_both_networks_learn": 1,
        "test_a_few_steps_lower_the_d_loss": 2,
        "test_batch_is_not_modified": 1,
    },
    "ex08_distilbert": {
        "test_mean_pool_ignores_padding": 2,
        "test_mean_pool_of_only_padding_is_finite": 1,
        "test_encoder_interface": 2,
        "test_single_caption_is_the_mean_of_its_tokens": 2,
        "test_padding_and_batching_do_not_change_vectors": 2,
        "test_long_captions_are_truncated": 1,
        "test_unloadable_weights_raise_lab_error": 1,
        "test_plugs_into_the_registry": 2,
    },
}
SHA256: dict[str, str] = {  # file in tests/grading -> sha256 of its bytes
    "conftest.py": "de052114562c28f8cff249170ddfdc06f03d0f375ccd4923c4ed1c06d078fef6",
    "test_ex01_captions.py": "a0de08e7c961351254e7f60195af22918d65bc27714b49f883bffee9cfacc7c8",
    "test_ex02_encode.py": "22cf8881aff61ac78f48cf3cb710ddfd742b810bd2dd192ebca7b56976ed200d",
    "test_ex03_dataset.py": "7b3f60a1792c59ddc3d42844e2ba27bbf862cf43a6160e341e4c1b4e67b24afd",
    "test_ex04_generator.py": "0d15d26bec1ef1be8fc6315cc8753869065ea4db0a0a4fd38beafaa312ae1ccb",
    "test_ex05_discriminator.py": "8dafd9bc0b786d14a4e78980f83f70285afa1a2c9dc8340c88ae0e40701ad18a",
    "test_ex06_loss.py": "c19e71142cd5284da19be97459378a9d3c6a2f0cf2aced7d9934744a0f04c410",
    "test_ex07_train_step.py": "5df5bed4a756260a49dd209333185fbd4c4647387b1f80b22397ec23c4098553",
    "test_ex08_distilbert.py": "019ca9f053d833a1757c298de7fb79927b330a270811b44947441951c42e4044",
}
