"""What `lab grade` expects: every exercise, its checks and their points, the lab's own answers, and the check files' hashes.

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
        "test_architecture_size": 1,
        "test_output_is_tanh_range": 1,
        "test_output_depends_on_text_and_noise": 2,
        "test_gradient_reaches_every_parameter": 2,
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
LAB_ANSWERS: dict[
    str, tuple[str, ...]
] = {  # the lab's own code for each exercise: a hand-in that reaches one is refused
    "ex01_captions": ("lab.data.captions.load_captions", "lab.data.captions.read_caption_file"),
    "ex02_encode": ("plugins.sentence_encoders.SentenceTransformerEncoder", "plugins.sentence_encoders.mpnet"),
    "ex03_dataset": ("lab.data.dataset.FlowersDataset",),
    "ex04_generator": ("plugins.course.CourseGenerator", "plugins.dcgan.DCGANGenerator"),
    "ex05_discriminator": ("plugins.course.CourseDiscriminator", "plugins.dcgan.DCGANDiscriminator"),
    "ex06_loss": ("plugins.course.CourseGanClsLoss", "plugins.gan_cls.GanClsLoss"),
    "ex07_train_step": ("lab.train.step.train_step", "lab.train.trainer.train_step"),  # the trainer imports it
    "ex08_distilbert": (
        "plugins.distilbert.DistilBertEncoder",
        "plugins.distilbert.distilbert",
        "plugins.distilbert.mean_pool",
    ),
}
SHA256: dict[str, str] = {  # file in tests/grading -> sha256 of its bytes
    "conftest.py": "78c0283f47ca6740df7c08e5c96407bb08461105c19d03771098c9a1d8d94471",
    "test_ex01_captions.py": "fa1ac846a6742e39366ef6b31f0fff013efa1aad669b6a0b6efa8eabb3134337",
    "test_ex02_encode.py": "66c5e745029f1e30d61e8b75e6313813a57e6bfa0e8bec5b0d9c54dba3e0ad91",
    "test_ex03_dataset.py": "01ce96f9fed405ee395ce3d75cf6ec51bcd81697d769152c4642933868b183b4",
    "test_ex04_generator.py": "7d36003f0c597fdea7240022e2dc0e070a7c5f83451610a8cef596e38dd1e242",
    "test_ex05_discriminator.py": "56f3dfa7a6cd0b5d497021501113edba6b160fed33009e0f915364ff252a7ea7",
    "test_ex06_loss.py": "d51e631bd1e4f9819d34c34d00e148eac0822aaf370dc80c0d3e8522b07cc137",
    "test_ex07_train_step.py": "79723f4d96ae551b2993ac4bacf97ac6d188b8f0343d9a6345be6897cfe2067e",
    "test_ex08_distilbert.py": "d60ac0c347e15f3766a3cdcad6a912403abc5abd91f987dac266817f8acdcc09",
}
