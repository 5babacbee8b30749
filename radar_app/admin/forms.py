"""The user admin's forms (CSRF from Flask-WTF; the rules themselves are radar_app.accounts')."""

from __future__ import annotations

from flask_wtf import FlaskForm

# SelectChoice is new in WTForms 3.3; the newest stub package (types-WTForms 3.2.1) lacks it.
from wtforms import (  # type: ignore[attr-defined]
    BooleanField,
    EmailField,
    PasswordField,
    RadioField,
    SelectChoice,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from radar_app.accounts import (
    EMAIL_MESSAGE,
    EMAIL_PATTERN,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
)

ROLE_CHOICES = [
    SelectChoice("user", "User: their own jobs"),
    SelectChoice("admin", "Admin: every job, the admin pages"),
]
READ_ONLY_LABEL = "Read-only: sees, changes nothing"


class RoleFields(FlaskForm):
    role = RadioField("Role", choices=ROLE_CHOICES, default="user", validators=[DataRequired()])
    read_only = BooleanField(READ_ONLY_LABEL)

    @property
    def is_admin(self) -> bool:
        return self.role.data == "admin"


class CreateUserForm(RoleFields):
    email = EmailField(
        "Email",
        filters=[lambda text: text.strip() if text else text],
        validators=[
            DataRequired(message="Enter an email address."),
            Length(max=MAX_EMAIL_LENGTH, message=f"Use at most {MAX_EMAIL_LENGTH} characters."),
            Regexp(EMAIL_PATTERN, message=EMAIL_MESSAGE),
        ],
    )
    password = PasswordField(
        "Initial password",
        description="Leave empty to have one generated; it is shown once.",
        validators=[
            Optional(),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            ),
        ],
    )


class RoleForm(RoleFields):
    pass
