from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from radar_app.accounts import EMAIL_MESSAGE, EMAIL_PATTERN

EMAIL_SHAPE = Regexp(EMAIL_PATTERN, message=EMAIL_MESSAGE)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), EMAIL_SHAPE])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")
